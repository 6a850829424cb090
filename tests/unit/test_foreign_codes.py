"""Codes minted elsewhere and business documents, without a database: which codes a scheme says
are signed here, and how a document number travels in EPCIS."""

from __future__ import annotations

import pytest

from tracecore.codes import Code, Scheme
from tracecore.epcis.identifiers import transaction_number, transaction_uri
from tracecore.errors import InvalidArgument
from tracecore.mac import Mac
from tracecore.minting import Minter
from tracecore.schemes import SCHEMES
from tracecore.usecases.partners import document, not_signed_here

MACS = {13: Mac(b"\x05" * 32)}


@pytest.mark.parametrize(("scheme", "product"), [(Scheme.GS1, "09501101530003"),
                                                 (Scheme.NMPA, "8612345")])
def test_a_scheme_tells_its_own_codes_from_codes_minted_elsewhere(scheme: Scheme, product: str
                                                                  ) -> None:
    """Codes our keys minted are signed here; the same product's codes from another issuer, or
    ours under a key we do not hold, are not."""
    ours = [Code(scheme, product, s) for s in Minter(scheme, product, 13, MACS[13]).mint(20)]
    theirs = [Code(scheme, product, s)
              for s in Minter(scheme, product, 13, Mac(b"\x09" * 32)).mint(20)]
    assert all(SCHEMES[scheme].signed_here(c, MACS) for c in ours)
    assert not_signed_here(ours + theirs, MACS) == theirs
    assert not_signed_here(ours, {}) == ours


@pytest.mark.parametrize("number", ["DA-2026-0042", "出库-0001", "po 17/3"])
def test_a_document_number_travels_as_a_uri_and_comes_back(number: str) -> None:
    """A plain number becomes a URI (as EPCIS asks) and reads back as the same number."""
    uri = transaction_uri(number)
    assert uri.isascii() and " " not in uri
    assert transaction_number(uri) == number


def test_cbv_and_partner_transaction_uris_read_as_their_numbers() -> None:
    """CBV's urn:epcglobal:cbv:bt:{GLN}:{id} reads as the id; a partner's own URI stays whole."""
    assert transaction_number("urn:epcglobal:cbv:bt:0614141000005:PO-1") == "PO-1"
    assert transaction_number("http://tx.example.com/po/12") == "http://tx.example.com/po/12"
    assert transaction_uri("http://tx.example.com/po/12") == "http://tx.example.com/po/12"


def test_a_business_document_needs_a_number_and_defaults_to_a_despatch_advice() -> None:
    """The type defaults to desadv; a missing number or a NUL in it is refused naming the
    field."""
    assert document("", "DA-1").type == "desadv"
    assert document("crkd", "出库-1").key() == b"crkd\0" + "出库-1".encode()
    with pytest.raises(InvalidArgument, match=r"documents\.id"):
        document("po", "")
    with pytest.raises(InvalidArgument, match=r"documents\.id"):
        document("po", "A\0B")
