"""The check page tells strangers nothing about who is a customer: a code of a product no
tenant registered reads exactly like a code its manufacturer never issued."""

from __future__ import annotations

from urllib.parse import quote

from tests.integration.frontdoor.conftest import Door, Shop, new_gtin


def test_a_product_nobody_registered_reads_like_a_code_never_issued(door: Door, shop: Shop
                                                                     ) -> None:
    """Same status, outcome and wording for a code of an unregistered GTIN as for a code of a
    registered one whose check characters are wrong; only the code itself differs."""
    pack = shop.pack()
    serial = pack.serial()
    typo = f"(01){pack.gtin}(21){serial[:-1]}{'A' if serial[-1] != 'A' else 'B'}"
    stranger = f"(01){new_gtin()}(21){serial}"
    with door.client() as http:
        pages = [http.get("/check", params={"code": code}, headers={"Accept-Language": "en"})
                 for code in (typo, stranger)]
    assert [p.status_code for p in pages] == [200, 200]
    known, unknown = (_without(p.text, code) for p, code in zip(pages, (typo, stranger),
                                                                 strict=True))
    assert 'data-outcome="not_genuine"' in known
    assert known == unknown


def _without(page: str, code: str) -> str:
    """The page with the code, however it is written in it, blanked."""
    for form in (quote(code, safe=""), code):
        page = page.replace(form, "CODE")
    return page
