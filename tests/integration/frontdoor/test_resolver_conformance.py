"""The resolver against the checks of GS1's resolver conformance test suite, one test per
conformance statement of the GS1-Conformant Resolver standard, over real HTTP."""

from __future__ import annotations

from tests.integration.frontdoor.conftest import Door, Shop, new_gtin

LINKSET = "application/linkset+json"
VOC = "https://gs1.org/voc/"


def test_description_file_is_json_with_the_fields_the_suite_reads(door: Door) -> None:
    """/.well-known/gs1resolver is JSON naming the resolver, its root, its primary keys and
    its link type vocabulary, readable from any origin."""
    with door.client() as http:
        answer = http.get("/.well-known/gs1resolver", headers={"Origin": "https://a.example"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["access-control-allow-origin"] == "*"
    body = answer.json()
    for field in ("name", "resolverRoot", "supportedPrimaryKeys", "supportedLinkType"):
        assert body[field], field
    assert body["resolverRoot"].startswith("http")
    assert body["supportedLinkType"][0]["namespace"] == VOC


def test_get_head_and_options_are_all_supported(door: Door, shop: Shop) -> None:
    """GET and HEAD answer the same status and Link header; OPTIONS lists GET, HEAD, OPTIONS."""
    pack = shop.pack()
    url = f"/01/{pack.gtin}/10/{pack.lot}/21/{pack.serial()}"
    with door.client() as http:
        got, head = http.get(url), http.head(url)
        options = http.options(url, headers={"Origin": "https://a.example",
                                             "Access-Control-Request-Method": "HEAD"})
    assert got.status_code == head.status_code == 307
    assert got.headers["link"] == head.headers["link"]
    assert options.status_code in (200, 204)
    allowed = options.headers["access-control-allow-methods"]
    for method in ("GET", "HEAD", "OPTIONS"):
        assert method in allowed, method


def test_cors_lets_any_origin_read_location_and_link(door: Door, shop: Shop) -> None:
    """A redirect carries Access-Control-Allow-Origin * and exposes Link and Location."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(pack.digital_link(), headers={"Origin": "https://a.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "link" in exposed and "location" in exposed


def test_default_link_is_a_temporary_redirect_with_a_linkset_link(door: Door, shop: Shop
                                                                  ) -> None:
    """With no link type asked for, the answer is a 307 (never a 200 page or a 301) whose Link
    header names the linkset and the default link."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}")
    assert answer.status_code == 307
    link = answer.headers["link"]
    assert 'rel="linkset"' in link
    assert f'rel="{VOC}defaultLink"' in link


def test_link_type_all_and_linkset_answer_the_linkset_never_a_redirect(door: Door, shop: Shop
                                                                       ) -> None:
    """linkType=all (resolver 1.0) and linkType=linkset both answer 200 with the linkset
    JSON, served as application/linkset+json, its anchor the request's key."""
    pack = shop.pack()
    with door.client() as http:
        answers = [http.get(f"/01/{pack.gtin}", params={"linkType": t})
                   for t in ("all", "linkset", "gs1:linkset")]
    for answer in answers:
        assert answer.status_code == 200, answer.request.url
        assert answer.headers["content-type"].startswith(LINKSET)
        (context,) = answer.json()["linkset"]
        assert context["anchor"].endswith(f"/01/{pack.gtin}")
        assert f"{VOC}verificationService" in context


def test_accept_linkset_json_gets_the_linkset(door: Door, shop: Shop) -> None:
    """Accept: application/linkset+json without a link type answers the linkset, not a
    redirect, and the answer says it varies with Accept."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}/10/{pack.lot}", headers={"Accept": LINKSET})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(LINKSET)
    assert "accept" in answer.headers["vary"].lower()


def test_link_type_by_compact_or_full_uri_redirects_to_that_link(door: Door, shop: Shop
                                                                 ) -> None:
    """linkType=gs1:pip and linkType=https://gs1.org/voc/pip both redirect to the product
    information page."""
    pack = shop.pack()
    shop.link(pack, "gs1:pip", "https://example.com/pip")
    with door.client() as http:
        compact = http.get(f"/01/{pack.gtin}", params={"linkType": "gs1:pip"})
        full = http.get(f"/01/{pack.gtin}", params={"linkType": f"{VOC}pip"})
    for answer in (compact, full):
        assert answer.status_code == 307
        assert answer.headers["location"] == "https://example.com/pip"


def test_query_string_data_attributes_are_passed_on(door: Door, shop: Shop) -> None:
    """Data attributes in the query string (17 expiry) reach the redirect target; linkType
    itself is not passed on."""
    pack = shop.pack()
    shop.link(pack, "gs1:pip", "https://example.com/pip")
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}?17={pack.expiry}&linkType=gs1:pip")
    assert answer.status_code == 307
    assert answer.headers["location"] == f"https://example.com/pip?17={pack.expiry}"


def test_accept_language_picks_the_link_in_that_language(door: Door, shop: Shop) -> None:
    """Two leaflets in two languages: each browser language gets its own."""
    pack = shop.pack()
    shop.link(pack, "gs1:epil", "https://example.com/en.pdf", "en")
    shop.link(pack, "gs1:epil", "https://example.com/zh.pdf", "zh")
    url = f"/01/{pack.gtin}?linkType=gs1:epil"
    with door.client() as http:
        zh = http.get(url, headers={"Accept-Language": "zh-CN"})
        en = http.get(url, headers={"Accept-Language": "en-US,en;q=0.5"})
    assert zh.headers["location"] == "https://example.com/zh.pdf"
    assert en.headers["location"] == "https://example.com/en.pdf"


def test_an_unoffered_link_type_is_404_not_a_200(door: Door, shop: Shop) -> None:
    """A link type the product lacks answers 404 with a reason, never a 200 error page."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}", params={"linkType": "gs1:recallStatus"})
    assert answer.status_code == 404
    assert answer.json()["detail"]


def test_an_unknown_gtin_is_404(door: Door) -> None:
    """A well-formed GTIN that no one registered here answers 404."""
    with door.client() as http:
        answer = http.get(f"/01/{new_gtin()}/10/LOT1")
    assert answer.status_code == 404


def test_a_bad_check_digit_is_400_saying_so(door: Door, shop: Shop) -> None:
    """A GTIN whose check digit is wrong answers 400 naming the check digit."""
    pack = shop.pack()
    bad = pack.gtin[:13] + str((int(pack.gtin[13]) + 3) % 10)
    with door.client() as http:
        answer = http.get(f"/01/{bad}")
    assert answer.status_code == 400
    assert "check digit" in answer.json()["detail"]


def test_a_gtin_in_short_form_is_accepted_padded(door: Door, shop: Shop) -> None:
    """A GTIN-13 written without its leading zero resolves like the 14-digit form (GS1 Digital
    Link lets a GTIN-8, -12 or -13 be padded)."""
    pack = shop.pack()
    with door.client() as http:
        long = http.get(f"/01/{pack.gtin}")
        short = http.get(f"/01/{pack.gtin[1:]}") if pack.gtin[0] == "0" else long
    assert short.status_code == long.status_code == 307
    assert short.headers["location"] == long.headers["location"]


def test_linkset_link_header_is_on_the_linkset_answer_too(door: Door, shop: Shop) -> None:
    """The linkset answer also carries a Link header with the linkset relation."""
    pack = shop.pack()
    with door.client() as http:
        answer = http.get(f"/01/{pack.gtin}", params={"linkType": "linkset"})
    assert 'rel="linkset"' in answer.headers["link"]
