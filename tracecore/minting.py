"""Minting HMAC-tagged serials, checking their tags, and the density limit that keeps them safe.

The tag is HMAC-SHA256, under the signing key, of the code's ledger key up to the tag (scheme
letter, product, untagged part of the serial). Each scheme lays out its serials (key part,
random part, tag) and sets its density limit in its module of ``tracecore.schemes``, which also
shows that a guess succeeds with probability below the EU FMD bound of 1e-4; this module draws
the random parts and runs the HMAC for any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import urandom
from typing import TYPE_CHECKING, cast

from tracecore._speedups import load
from tracecore.codes import Code, Scheme, product_key
from tracecore.errors import DensityLimitReached, InvalidArgument
from tracecore.mac import Mac
from tracecore.schemes import SCHEMES
from tracecore.schemes.gs1 import ALPHABET, MAX_KEY_ID
from tracecore.schemes.gs1 import SERIAL_LENGTH as GS1_SERIAL_LENGTH
from tracecore.schemes.gs1 import check_tags as gs1_check_tags

if TYPE_CHECKING:
    from tracecore._speedups._hmac import HmacKey

__all__ = [
    "ALPHABET",
    "GS1_SERIAL_LENGTH",
    "MAX_KEY_ID",
    "Minter",
    "capacity",
    "check_density",
    "check_tag",
    "check_tags",
    "density_slot",
    "key_id_of",
    "remaining",
]

# The schemes' tag checks, looked up once per code on the verification path.
_CHECK_TAG = {scheme: layout.check_tag for scheme, layout in SCHEMES.items()}
_GS1 = Scheme.GS1
_COMPILED = load("minting")


class Minter:
    """Mints serials for one (scheme, product, signing key); the key's HMAC set-up is in ``mac``."""

    __slots__ = ("_compiled_tag", "_cut", "_draw", "_head", "_mac", "_tag")

    def __init__(self, scheme: Scheme, product: str, key_id: int, mac: Mac) -> None:
        if not 1 <= key_id <= MAX_KEY_ID:
            raise InvalidArgument(f"must be 1 to {MAX_KEY_ID}", field="key_id")
        layout = SCHEMES[scheme]
        layout.check_product(product)
        self._draw = layout.random
        self._tag = layout.tag
        self._compiled_tag = layout.tag_layout
        prefix = product_key(scheme, product)
        self._head = prefix + layout.key_part(key_id).encode("ascii")
        self._cut = len(prefix)
        self._mac = mac

    def __repr__(self) -> str:
        return f"Minter({self._head.decode('ascii')!r})"

    @property
    def cut(self) -> int:
        """Where the serial starts in a ledger key from ``mint_keys``."""
        return self._cut

    def mint(self, n: int) -> list[str]:
        """``n`` distinct serials: GS1 AI (21) serials, or NMPA 13-digit production identifiers."""
        return self.serials(self.mint_keys(n))

    def serials(self, keys: list[bytes]) -> list[str]:
        """The serials of ledger keys from ``mint_keys``, as text."""
        if _COMPILED is not None:
            return cast(list[str], _COMPILED.serials(keys, self._cut))
        cut = self._cut
        return [key[cut:].decode("ascii") for key in keys]

    def mint_keys(self, n: int) -> list[bytes]:
        """``n`` distinct codes as ledger keys (product key, then serial): the HMAC message is
        the key up to the tag, so the store takes them as they are, without encoding text."""
        if n < 0:
            raise InvalidArgument("must not be negative", field="count")
        width, table, dropped = self._draw
        keys = self.tagged(_random_chars(n * width, table, dropped))
        if len(keys) == n:
            return keys
        found = dict.fromkeys(keys)  # a part drawn twice: draw again for the missing ones
        while (missing := n - len(found)) > 0:
            found.update(dict.fromkeys(self.tagged(_random_chars(missing * width, table,
                                                                 dropped))))
        return list(found)

    def tagged(self, chars: bytes) -> list[bytes]:
        """The ledger keys whose random parts are ``chars`` (each the scheme's width), in order,
        a part equal to an earlier one left out: in one compiled call where
        ``tracecore._speedups`` is built, else ``tagged_reference``."""
        compiled = self._mac.native
        if compiled is None or self._compiled_tag is None:
            return self.tagged_reference(chars)
        assert _COMPILED is not None
        return cast(list[bytes], _COMPILED.mint_keys(
            compiled, self._head, chars, self._draw[0], *self._compiled_tag))

    def tagged_reference(self, chars: bytes) -> list[bytes]:
        """``tagged`` in Python, through ``Mac`` and the scheme's own ``tag``."""
        head, tag, width = self._head, self._tag, self._draw[0]
        messages = list(dict.fromkeys(head + chars[i:i + width]
                                      for i in range(0, len(chars), width)))
        return [message + tag(digest)
                for message, digest in zip(messages, self._mac.digests(messages), strict=True)]


def density_slot(scheme: Scheme, key_id: int) -> int:
    """Which random space a key mints into: NMPA keys whose ids share a last digit share one
    (the code carries only that digit), so their codes count against one density limit."""
    return SCHEMES[scheme].density_slot(key_id)


def capacity(scheme: Scheme) -> int:
    """How many codes one product may have under one signing key: the density limit."""
    return SCHEMES[scheme].capacity


def remaining(scheme: Scheme, issued: int) -> int:
    """How many more codes fit under the density limit when ``issued`` are out already."""
    return max(SCHEMES[scheme].capacity - issued, 0)


def check_density(scheme: Scheme, issued: int, n: int) -> None:
    """Raise DensityLimitReached unless ``n`` more codes fit beside ``issued`` under one key."""
    if n > remaining(scheme, issued):
        raise DensityLimitReached(
            f"{n:,} more codes would pass the density limit of {capacity(scheme):,} "
            f"{scheme.name} codes per product and signing key ({issued:,} issued): "
            "rotate the signing key",
            field="count",
        )


def key_id_of(code: Code) -> int | None:
    """The GS1 serial's key id, or the NMPA key digit; None if the serial is not in our layout."""
    return SCHEMES[code.scheme].key_id_of(code.serial)


def check_tag(code: Code, macs: Mapping[int, Mac]) -> int | None:
    """The id of the key in ``macs`` whose tag the code carries, else None.

    None covers a forged or mistyped code, a serial not in our layout (another issuer's), and
    a key not in ``macs`` (unknown or revoked). An NMPA code is tried under every key in
    ``macs`` whose id ends in its key digit.
    """
    return _CHECK_TAG[code.scheme](code, macs)


def check_tags(codes: Sequence[Code], macs: Mapping[int, Mac],
               native: dict[int, HmacKey] | None = None) -> list[int | None]:
    """``check_tag`` of each code, in order; the GS1 codes through that scheme's batch loop,
    which sets each key up once for the whole batch (``native``: see ``gs1.check_tags``)."""
    gs1_rows = [row for row, code in enumerate(codes) if code.scheme is _GS1]
    if len(gs1_rows) == len(codes):
        return gs1_check_tags(codes, macs, native)
    checks = _CHECK_TAG
    out = [None if code.scheme is _GS1 else checks[code.scheme](code, macs) for code in codes]
    for row, key_id in zip(gs1_rows, gs1_check_tags([codes[r] for r in gs1_rows], macs, native),
                           strict=True):
        out[row] = key_id
    return out


def _random_chars(size: int, table: bytes, dropped: bytes) -> bytes:
    """``size`` characters: CSPRNG bytes through ``table``, with the ``dropped`` bytes removed.

    With nothing dropped this is one ``urandom`` call; otherwise it draws a little more than the
    expected loss, so that a second call is rare.
    """
    chars = b""
    while (short := size - len(chars)) > 0:
        chars += urandom(short + (short * len(dropped) >> 7)).translate(table, dropped)
    return chars[:size]
