"""The GS1 Digital Link resolver over real HTTP: redirects, linksets, link types, languages,
walk-up URIs, CORS and the readable refusals of bad URIs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.integration.frontdoor.conftest import Door, Shop, new_gtin


def test_default_link_is_a_307_to_the_check_page_with_a_link_header(door: Door, shop: Shop
                                                                     ) -> None:
    """A scanned QR code redirects (307) to the check page for that very pack, and the Link
    header points to the linkset, and to nothing else."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(pack.digital_link())
    assert answer.status_code == 307
    target = urlsplit(answer.headers["location"])
    assert target.path == "/check"
    code = parse_qs(target.query)["code"][0]
    assert code.endswith(f"/01/{pack.gtin}/10/{pack.lot}/21/{pack.serial()}?17={pack.expiry}")
    link = answer.headers["link"]
    assert 'rel="linkset"' in link and "application/linkset+json" in link
    assert "verificationService" not in link and "," not in link


def test_following_the_redirect_shows_a_genuine_pack(door: Door, shop: Shop) -> None:
    """Following the QR code's redirect lands on a page saying the pack is genuine."""
    pack = shop.pack()
    with door.client(follow_redirects=True) as http:
        page = http.get(pack.digital_link())
    assert page.status_code == 200
    assert 'data-outcome="genuine"' in page.text


def test_linkset_by_link_type_or_accept_header_never_redirects(door: Door, shop: Shop) -> None:
    """linkType=linkset and Accept: application/linkset+json both answer the RFC 9264 linkset
    with every link, the admin's with language and title."""
    pack = shop.pack()
    shop.link(pack, "gs1:epil", "https://leaflets.example.com/en.pdf", "en", "Leaflet")
    with door.client() as http:
        by_type = http.get(f"/01/{pack.gtin}", params={"linkType": "linkset"})
        by_accept = http.get(f"/01/{pack.gtin}",
                             headers={"Accept": "application/linkset+json"})
    for answer in (by_type, by_accept):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/linkset+json")
        (context,) = answer.json()["linkset"]
        assert context["anchor"].endswith(f"/01/{pack.gtin}")
        assert context["https://gs1.org/voc/epil"] == [
            {"href": "https://leaflets.example.com/en.pdf", "title": "Leaflet",
             "hreflang": ["en"]}]
        assert "https://gs1.org/voc/defaultLink" in context


def test_a_named_link_type_redirects_there_with_the_query_passed_on(door: Door, shop: Shop
                                                                    ) -> None:
    """linkType=gs1:pip redirects to the product page, the request's query string passed on."""
    pack = shop.pack()
    shop.link(pack, "gs1:pip", "https://example.com/pip?src=qr", title="About")
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}/10/{pack.lot}?linkType=gs1:pip&17={pack.expiry}")
        short = http.get(f"/01/{pack.gtin}?linkType=pip")
    assert answer.status_code == 307
    assert answer.headers["location"] == f"https://example.com/pip?src=qr&17={pack.expiry}"
    assert short.status_code == 307
    assert short.headers["location"] == "https://example.com/pip?src=qr"


def test_a_link_type_the_product_lacks_is_404(door: Door, shop: Shop) -> None:
    """Asking for a link type the product does not offer answers 404, saying which."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}", params={"linkType": "gs1:smpc"})
    assert answer.status_code == 404
    assert "gs1:smpc" in answer.json()["detail"]


def test_links_are_chosen_by_accept_language(door: Door, shop: Shop) -> None:
    """The leaflet in the language the browser prefers wins; a language without one gets the
    leaflet meant for every language."""
    pack = shop.pack()
    shop.link(pack, "gs1:epil", "https://example.com/leaflet-en.pdf", "en")
    shop.link(pack, "gs1:epil", "https://example.com/leaflet-zh.pdf", "zh-CN")
    shop.link(pack, "gs1:epil", "https://example.com/leaflet.pdf")
    url = f"/01/{pack.gtin}?linkType=gs1:epil"
    with door.client() as http:
        chinese = http.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
        english = http.get(url, headers={"Accept-Language": "en-GB,en;q=0.9"})
        french = http.get(url, headers={"Accept-Language": "fr-FR"})
        rather_english = http.get(url, headers={"Accept-Language": "zh;q=0.2, en"})
    assert chinese.headers["location"] == "https://example.com/leaflet-zh.pdf"
    assert english.headers["location"] == "https://example.com/leaflet-en.pdf"
    assert french.headers["location"] == "https://example.com/leaflet.pdf"
    assert rather_english.headers["location"] == "https://example.com/leaflet-en.pdf"


def test_walk_up_uris_resolve(door: Door, shop: Shop) -> None:
    """/01/{gtin} alone, with a consumer product variant (22) and with its lot resolve; the
    check page then shows the product and says it names no single pack."""
    pack = shop.pack()
    with door.client() as http:
        for path in (f"/01/{pack.gtin}", f"/01/{pack.gtin}/10/{pack.lot}",
                     f"/01/{pack.gtin}/22/V2/10/{pack.lot}", f"/01/{pack.gtin}/10/{pack.lot}/"):
            answer = http.get(path)
            assert answer.status_code == 307, path
            page = http.get(answer.headers["location"])
            assert 'data-outcome="product_only"' in page.text
            assert "Amoxicillin Capsules" in page.text


def test_head_answers_like_get_without_a_body(door: Door, shop: Shop) -> None:
    """HEAD gets the same redirect and Link header as GET, and no body."""
    pack = shop.pack()
    with door.client() as http:
        got, head = http.get(pack.digital_link()), http.head(pack.digital_link())
    assert head.status_code == 307
    assert head.headers["location"] == got.headers["location"]
    assert head.headers["link"] == got.headers["link"]
    assert head.content == b""


def test_options_and_cors(door: Door, shop: Shop) -> None:
    """OPTIONS answers a CORS preflight; every answer lets any origin read it, Link and
    Location included."""
    pack = shop.pack()
    with door.client() as http:
        preflight = http.options(f"/01/{pack.gtin}", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
        answer = http.get(f"/01/{pack.gtin}", headers={"Origin": "https://app.example.com"})
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "Link" in answer.headers["access-control-expose-headers"]


def test_resolver_description_file(door: Door) -> None:
    """/.well-known/gs1resolver describes the resolver: its root, (01) and (00), the gs1: types."""
    with door.client() as http:
        answer = http.get("/.well-known/gs1resolver")
    assert answer.status_code == 200
    description = answer.json()
    assert description["resolverRoot"] == door.url
    assert description["supportedPrimaryKeys"] == ["01", "00"]
    assert description["supportedLinkType"][0]["prefix"] == "gs1:"


def test_syntactically_bad_uris_are_400_with_the_reason(door: Door, shop: Shop) -> None:
    """A wrong check digit, a character outside set 82, a too-long serial and qualifiers out of
    order each answer 400 saying what is wrong."""
    pack = shop.pack()
    bad_check = pack.gtin[:13] + str((int(pack.gtin[13]) + 1) % 10)
    cases = {
        f"/01/{bad_check}": "check digit",
        f"/01/{pack.gtin}/21/AB%C3%A9": "character set 82",
        f"/01/{pack.gtin}/21/{'A' * 21}": "longer than 20",
        f"/01/{pack.gtin}/21/X/10/{pack.lot}": "order",
        f"/01/{pack.gtin[:10]}": "GTIN",
        f"/01/{pack.gtin}?17=281399": "month 13",
    }
    with door.client() as http:
        for path, reason in cases.items():
            answer = http.get(path)
            assert answer.status_code == 400, path
            assert reason in answer.json()["detail"], (path, answer.json())


def test_an_unknown_gtin_is_404(door: Door) -> None:
    """A valid GTIN no manufacturer here registered answers 404."""
    with door.client() as http:
        answer = http.get(f"/01/{new_gtin()}")
    assert answer.status_code == 404
    assert "not known" in answer.json()["detail"]


def test_admin_links_are_validated(door: Door, shop: Shop) -> None:
    """A link with a made-up type, a relative URL or a bad language tag is refused by the
    Admin API, naming the field."""
    import grpc
    import pytest

    pack = shop.pack()
    for link_type, href, lang, field in (
            ("pip", "https://example.com", "", "link.link_type"),
            ("gs1:pip", "/relative", "", "link.href"),
            ("gs1:pip", "https://example.com", "english!", "link.lang")):
        with pytest.raises(grpc.RpcError) as caught:
            shop.link(pack, link_type, href, lang)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in caught.value.details()
