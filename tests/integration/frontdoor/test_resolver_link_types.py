"""Every written form of a link type over real HTTP: compact (``gs1:pip``), bare (``pip``)
and the full vocabulary URI, the linkset's name included."""

from __future__ import annotations

from tests.integration.frontdoor.conftest import Door, Shop

LINKSET = "application/linkset+json"
VOC = "https://gs1.org/voc/"


def test_the_linkset_asked_for_in_any_form_is_the_linkset(door: Door, shop: Shop) -> None:
    """linkType=all, linkset, gs1:linkset and the full vocabulary URI of linkset each answer
    200 with the linkset JSON, never a redirect or a 404."""
    pack = shop.pack()
    with door.client() as http:
        answers = [http.get(f"/01/{pack.gtin}", params={"linkType": t})
                   for t in ("all", "linkset", "gs1:linkset", f"{VOC}linkset")]
    for answer in answers:
        assert answer.status_code == 200, answer.request.url
        assert answer.headers["content-type"].startswith(LINKSET)
        (context,) = answer.json()["linkset"]
        assert context["anchor"].endswith(f"/01/{pack.gtin}")


def test_link_type_by_compact_bare_or_full_uri_redirects_to_that_link(door: Door, shop: Shop
                                                                      ) -> None:
    """linkType=gs1:pip, pip and https://gs1.org/voc/pip all redirect to the product
    information page."""
    pack = shop.pack()
    shop.link(pack, "gs1:pip", "https://example.com/pip")
    with door.client() as http:
        answers = [http.get(f"/01/{pack.gtin}", params={"linkType": t})
                   for t in ("gs1:pip", "pip", f"{VOC}pip")]
    for answer in answers:
        assert answer.status_code == 307, answer.request.url
        assert answer.headers["location"] == "https://example.com/pip"
