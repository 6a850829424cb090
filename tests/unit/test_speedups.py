"""The compiled loops (tracecore._speedups) answer exactly as their pure-Python references."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import gs1_scans, nmpa_scans, scans
from tracecore import codes as codes_module
from tracecore._speedups import PURE, PURE_ENV, load
from tracecore.codes import Code, Form, Scan, Scheme, parse_many, render
from tracecore.errors import ParseError
from tracecore.mac import Mac
from tracecore.minting import ALPHABET, Minter
from tracecore.schemes import gs1 as gs1_scheme
from tracecore.schemes import nmpa as nmpa_scheme

GTIN = "09501101530003"
DRUG = "8123456"
# Key 7 and 17 share NMPA key digit 7: a code is tried under both, in order.
MACS = {7: Mac(b"\x07" * 32), 17: Mac(b"\x11" * 32), 1023: Mac(b"\xfe" * 80)}
_MINTED = {
    Scheme.GS1: [Code(Scheme.GS1, GTIN, s) for key_id, mac in MACS.items()
                 for s in Minter(Scheme.GS1, GTIN, key_id, mac).mint(20)],
    Scheme.NMPA: [Code(Scheme.NMPA, DRUG, s) for key_id, mac in MACS.items()
                  for s in Minter(Scheme.NMPA, DRUG, key_id, mac).mint(20)],
}
compiled = pytest.mark.skipif(load("_tags") is None or load("_codes") is None,
                              reason="the compiled extension is not built or PHARMATRACE_PURE")


@st.composite
def _mistyped(draw: st.DrawFn, scheme: Scheme) -> Code:
    """A code of ours with one character changed: to another of its alphabet, or anything."""
    code = draw(st.sampled_from(_MINTED[scheme]))
    at = draw(st.integers(0, len(code.serial) - 1))
    alphabet = ALPHABET if scheme is Scheme.GS1 else "0123456789"
    char = draw(st.sampled_from(alphabet) | st.characters())
    return Code(scheme, code.product, code.serial[:at] + char + code.serial[at + 1:])


def _tag_cases() -> st.SearchStrategy[Code]:
    """Valid codes of both schemes, mistyped, forged, foreign serials, non-ASCII, long ones."""
    minted = st.sampled_from(_MINTED[Scheme.GS1] + _MINTED[Scheme.NMPA])
    forged = st.builds(lambda key, rest: Code(Scheme.GS1, GTIN, key + rest),
                       st.sampled_from(["07", "0H", "ZZ", "00", "7", "é7"]),
                       st.text(alphabet=ALPHABET + "ILOU é\x00", min_size=0, max_size=22))
    forged_nmpa = st.builds(lambda key, rest: Code(Scheme.NMPA, DRUG, key + rest),
                            st.sampled_from(["7", "1", "3", "٧"]),
                            st.text(alphabet="0123456789a٣", min_size=10, max_size=14))
    odd_products = st.builds(Code, st.sampled_from([Scheme.GS1, Scheme.NMPA]),
                             st.text(max_size=120),
                             st.sampled_from([c.serial for c in _MINTED[Scheme.GS1][:3]]
                                             + [c.serial for c in _MINTED[Scheme.NMPA][:3]]))
    return st.one_of(minted, _mistyped(Scheme.GS1), _mistyped(Scheme.NMPA), forged,
                     forged_nmpa, odd_products, st.builds(Code, st.just(Scheme.GS1), st.text(),
                                                          st.text()))


def _outcome(call: object, *args: object) -> object:
    """What a call returns, or the type and text of what it raises."""
    assert callable(call)
    try:
        return call(*args)
    except Exception as error:  # the two paths must raise alike
        return type(error), str(error)


@compiled
@given(st.lists(_tag_cases(), max_size=30), st.sets(st.sampled_from(sorted(MACS)), max_size=3))
def test_gs1_batch_tag_checks_match_the_reference(codes: list[Code], key_ids: set[int]) -> None:
    """Every GS1 code's key id (or None) is the reference loop's, under any set of keys."""
    gs1_codes = [c for c in codes if c.scheme is Scheme.GS1]
    macs = {key_id: MACS[key_id] for key_id in sorted(key_ids)}
    assert (_outcome(gs1_scheme.check_tags, gs1_codes, macs)
            == _outcome(gs1_scheme._check_tags, gs1_codes, macs))


@compiled
@given(_tag_cases(), st.lists(st.sampled_from(sorted(MACS)), unique=True, max_size=3))
def test_nmpa_tag_check_matches_the_reference(code: Code, key_ids: list[int]) -> None:
    """An NMPA code's key id (the first key in order whose check digits it carries) or None
    is the reference's, under keys in any order."""
    macs = {key_id: MACS[key_id] for key_id in key_ids}
    code = Code(Scheme.NMPA, code.product, code.serial)
    assert (_outcome(nmpa_scheme._check_tag, code, macs)
            == _outcome(nmpa_scheme._check_tag_pure, code, macs))


@compiled
def test_minted_codes_verify_and_their_typos_do_not() -> None:
    """The compiled checks find each minted code's key and refuse every one-character typo."""
    for scheme, minted in _MINTED.items():
        found = [gs1_scheme.check_tags([c], MACS)[0] if scheme is Scheme.GS1
                 else nmpa_scheme._check_tag(c, MACS) for c in minted]
        assert found == [7] * 20 + [17] * 20 + [1023] * 20
    typo = _MINTED[Scheme.GS1][0]
    typo = Code(Scheme.GS1, GTIN, typo.serial[:-1] + ("0" if typo.serial[-1] != "0" else "1"))
    assert gs1_scheme.check_tags([typo], MACS) == [None]


def _comparable(results: list[Scan | ParseError]) -> list[object]:
    return [(type(r), r.reason, r.__traceback__) if isinstance(r, ParseError) else r
            for r in results]


_OUR_SERIALS = st.sampled_from([c.serial for c in _MINTED[Scheme.GS1]])
_MESSY = st.text(alphabet=ALPHABET + "()]\x1d/?=%:. -\\\x00éILOU٣")


@st.composite
def _pallets(draw: st.DrawFn) -> list[str | bytes]:
    """Texts as a batch brings them: packs sharing a head in every form, near misses of the
    head and tail, codes of both schemes, garbage, bytes, non-ASCII and overlong input."""
    scan = draw(gs1_scans())
    form = draw(st.sampled_from([Form.HRI, Form.ELEMENT, Form.DIGITAL_LINK]))
    prefix = draw(st.sampled_from(["", "]d2", "\x1d", "]C1", " "]))
    packs = [prefix + render(Scan(Code(Scheme.GS1, scan.code.product, serial), scan.lot,
                                  scan.expiry), form) for serial in draw(st.lists(_OUR_SERIALS,
                                                                                  min_size=1,
                                                                                  max_size=4))]
    head = packs[0][:-20]
    others = st.one_of(
        st.sampled_from(packs),
        _OUR_SERIALS.map(lambda s: head + s),
        _MESSY.map(lambda t: head + t),
        st.text(alphabet=ALPHABET + "é", min_size=20, max_size=20).map(lambda t: head + t),
        _OUR_SERIALS.map(lambda s: head.encode() + s.encode()),
        _OUR_SERIALS.map(lambda s: head[:-1] + s),
        _OUR_SERIALS.map(lambda s: "é" + head + s),
        scans().map(lambda s: render(s, Form.NMPA20 if s.code.scheme is Scheme.NMPA
                                     else Form.ELEMENT)),
        nmpa_scans().map(lambda s: render(s, Form.NMPA20)),
        st.text(), st.binary(), _MESSY,
        st.just(head + "A" * 5000),
    )
    return draw(st.lists(others, max_size=25).map(lambda rest: [*packs, *rest]))


@compiled
@given(_pallets())
def test_parse_many_matches_the_reference(texts: list[str | bytes]) -> None:
    """A batch reads exactly as the reference reads it: the same scans, the same errors in the
    same places (without tracebacks)."""
    assert (_comparable(parse_many(texts))
            == _comparable(codes_module._parse_many(texts)))


@compiled
@given(st.lists(st.text() | st.binary(), max_size=10))
def test_parse_many_matches_the_reference_on_any_input(texts: list[str | bytes]) -> None:
    """Arbitrary text and bytes read alike on both paths."""
    assert (_comparable(parse_many(texts))
            == _comparable(codes_module._parse_many(texts)))


def test_codes_and_scans_are_plain_field_holders() -> None:
    """The compiled reading makes Code and Scan by setting their fields, as their dataclass
    ``__init__`` does: a check added to either (``__post_init__``) must reach that path too."""
    for cls in (Code, Scan):
        assert not hasattr(cls, "__post_init__")
        assert cls.__dataclass_params__.frozen
        assert "__slots__" in cls.__dict__


def test_the_extension_is_built_where_a_compiler_is() -> None:
    """`make install` builds the compiled loops on a machine with Python's C compiler, so a
    broken build cannot pass unnoticed as the pure path."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if PURE or shutil.which(compiler) is None:
        pytest.skip("pure path asked for, or no C compiler")
    assert load("_codes") is not None, "tracecore/_speedups not built: run `make install`"
    assert load("_tags") is not None, "_tags not built: it needs OpenSSL's headers (libssl-dev)"
    assert load("_siv") is not None, "_siv not built: it needs OpenSSL's headers (libssl-dev)"


def test_pure_switch_selects_the_reference_and_codes_still_verify() -> None:
    """With PHARMATRACE_PURE=1 nothing compiled is loaded, and a minted code still parses and
    verifies."""
    code = _MINTED[Scheme.GS1][0]
    text = render(Scan(code, "L1", "301231"), Form.ELEMENT)
    program = (
        "import sys\n"
        "from tracecore._speedups import load\n"
        "from tracecore.codes import parse_many\n"
        "from tracecore.mac import Mac\n"
        "from tracecore.minting import check_tags\n"
        "assert load('_tags') is None and load('_codes') is None\n"
        "assert Mac(b'k').native is None\n"
        "scan = parse_many([sys.argv[1]])[0]\n"
        "print(check_tags([scan.code], {7: Mac(b'\\x07' * 32)})[0])\n"
    )
    env = {**os.environ, PURE_ENV: "1"}
    result = subprocess.run([sys.executable, "-c", program, text], env=env, check=True,
                            capture_output=True, text=True)
    assert result.stdout.strip() == "7"


_scans = load("_scans")


@pytest.mark.skipif(_scans is None, reason="the compiled extension is not built or "
                                           "PHARMATRACE_PURE")
@given(key=st.binary(min_size=1, max_size=64), size=st.integers(1, 64),
       messages=st.lists(st.binary(max_size=400), max_size=8))
def test_keyed_blake2b_digests_as_hashlib(key: bytes, size: int, messages: list[bytes]) -> None:
    """The scan statistics' keyed hash in C gives hashlib's BLAKE2b digests, of empty messages
    and of messages of one block, exactly two and several."""
    assert _scans is not None
    messages += [b"", b"x" * 128, b"y" * 256, b"z" * 129]
    expected = [hashlib.blake2b(m, key=key, digest_size=size).digest() for m in messages]
    assert _scans.KeyedBlake2b(key, size).digests(messages) == expected
