"""Code schemes: every registered scheme keeps the same promises behind the one interface."""

from __future__ import annotations

import pytest

from tracecore.codes import Code, Form, Scan, Scheme, parse, render
from tracecore.mac import Mac
from tracecore.minting import Minter, check_tag, key_id_of
from tracecore.schemes import SCHEMES, CodeScheme, register

PRODUCTS = {Scheme.GS1: "09501101530003", Scheme.NMPA: "8123456"}
FORMS = {Scheme.GS1: Form.HRI, Scheme.NMPA: Form.NMPA20}
MAC = Mac(b"\x05" * 32)


def test_every_wire_scheme_is_registered() -> None:
    """Each scheme number of the API has a module behind it."""
    assert set(SCHEMES) == set(Scheme)


@pytest.mark.parametrize("scheme", list(PRODUCTS), ids=lambda s: s.name)
def test_a_minted_code_survives_its_ledger_key_its_text_and_its_tag(scheme: Scheme) -> None:
    """Minted, keyed, unkeyed, written and read back, a code is the same and its tag checks."""
    product = PRODUCTS[scheme]
    for serial in Minter(scheme, product, 13, MAC).mint(50):
        code = Code(scheme, product, serial)
        assert code.key().startswith(SCHEMES[scheme].key_letter + product.encode())
        assert Code.from_key(code.key()) == code
        assert parse(code.text()).code == code
        assert parse(render(Scan(code), FORMS[scheme])).code == code
        assert check_tag(code, {13: MAC}) == 13
        assert key_id_of(code) == SCHEMES[scheme].density_slot(13)


def test_the_keys_of_many_codes_are_each_codes_key() -> None:
    """An event's keys taken together are its codes' keys one by one, of every scheme, in
    order."""
    codes = [Code(scheme, PRODUCTS[scheme], serial) for scheme in PRODUCTS
             for serial in Minter(scheme, PRODUCTS[scheme], 13, MAC).mint(20)]
    assert Code.keys_of(codes) == [code.key() for code in codes]
    assert Code.keys_of(reversed(codes)) == [code.key() for code in reversed(codes)]


def test_a_second_scheme_with_a_taken_key_letter_is_refused() -> None:
    """Two schemes can never share ledger keys: registering one with a taken letter fails."""

    class Clash(type(SCHEMES[Scheme.GS1])):  # type: ignore[misc]
        """GS1 over again."""

    with pytest.raises(ValueError, match="registered already"):
        register(Clash())
    assert isinstance(SCHEMES[Scheme.GS1], CodeScheme)
