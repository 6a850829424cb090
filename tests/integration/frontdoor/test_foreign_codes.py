"""Codes minted elsewhere at the HTTP front door: the check page says who recorded the code and
who issued it, and the LVMS responder does not vouch for a code its tenant did not mint."""

from __future__ import annotations

import secrets
from dataclasses import replace

from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.frontdoor.conftest import Door, Pack, Shop, new_gtin
from tests.integration.frontdoor.test_check_page import outcome
from tests.integration.frontdoor.test_lvms import Partner, ask


def _foreign(door: Door, pack: Pack) -> Pack:
    """A pack of another company's product (registered by the pack's tenant, never minted by
    it), its code minted elsewhere and registered."""
    gtin = new_gtin()
    door.admin.RegisterProduct(apb.RegisterProductRequest(tenant=pack.tenant, product=cpb.Product(
        gtin=gtin, name="Partner Ibuprofen 400 mg")), timeout=RPC_TIMEOUT_S)
    code = f"(01){gtin}(21)X{secrets.token_hex(6).upper()}"
    (answer,) = door.lifecycle.RegisterCodes(iter([lpb.RegisterCodesRequest(
        tenant=pack.tenant, codes=[code], minted_by="Contract Packer GmbH")]),
        timeout=RPC_TIMEOUT_S)
    assert answer.registered == 1, answer
    return replace(pack, gtin=gtin, codes=[code])


def test_the_check_page_says_who_recorded_and_who_issued_a_foreign_code(
        door: Door, shop: Shop) -> None:
    """A code recorded here but minted elsewhere is neither genuine nor counterfeit on the page:
    recorded by the tenant, issued by the minter."""
    foreign = _foreign(door, shop.pack(1))
    with door.client() as http:
        page = http.get("/check", params={"code": foreign.codes[0], "lang": "en"})
    assert page.status_code == 200
    assert outcome(page.text) == "known_foreign"
    assert f"recorded by {foreign.tenant} but issued by Contract Packer GmbH" in page.text


def test_lvms_does_not_verify_a_code_its_tenant_did_not_mint(door: Door, shop: Shop) -> None:
    """LVMS speaks for the GTIN's brand owner: a code only recorded here answers verified
    false, while the tenant's own pack answers true."""
    pack = shop.pack(1)
    foreign = _foreign(door, pack)
    partner = Partner(shop, pack)
    with door.client() as http:
        own = ask(http, pack, partner)
        answer = ask(http, foreign, partner)
    assert own.json()["data"] == {"verified": True}
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["verified"] is False
