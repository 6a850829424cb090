"""The checks of GS1's resolver conformance test suite (GS1-Conformant Resolver 1.x, the
`test-suites/resolver/1.0.0` suite run at ref.gs1.org), each made here over real HTTP against a
pack's Digital Link, named by the suite's own test id. The suite's network-only checks (that
https works on port 443) are covered by tests/integration/frontdoor/test_tls.py."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema  # type: ignore[import-untyped]  # jsonschema ships no type information
import pytest

from tests.integration.frontdoor.conftest import Door, Pack, Shop

#: The rules of GS1's published linkset schema (ref.gs1.org/standards/resolver/linkset-schema),
#: written out: every context has an anchor and an item description, every link a href and a
#: title, and nothing else than the attributes the schema lists.
LINKSET_RULES = {
    "type": "object", "required": ["linkset"], "additionalProperties": False,
    "properties": {"linkset": {"type": "array", "items": {
        "type": "object", "required": ["anchor", "itemDescription"],
        "properties": {"anchor": {"type": "string", "pattern": "^https?://"},
                       "itemDescription": {"type": "string"}},
        "patternProperties": {"^https?://": {"type": "array", "items": {
            "type": "object", "required": ["href", "title"], "additionalProperties": False,
            "properties": {
                "href": {"type": "string", "pattern": "^https?://"},
                "title": {"type": "string"},
                "hreflang": {"type": "array",
                             "items": {"type": "string", "pattern": r"(^\w{2}$)|(^\w{2}-\w{2}$)"}},
                "type": {"type": "string", "pattern": r"\w+/[-+.\w]+"},
                "context": {"type": "array"}, "fwqs": {"type": "boolean"},
                "public": {"type": "boolean"}}}}},
        "additionalProperties": False}}}}
#: Link types of the GS1 Web vocabulary a pharmaceutical product's links use.
RATIFIED = {"defaultLink", "defaultLinkMulti", "verificationService", "pip", "epil", "smpc",
            "recallStatus", "leaflet", "productSustainabilityInfo", "safetyInfo", "instructions"}
_VOCABULARY = re.compile(r"^https://((ref|www)\.)?gs1\.org/voc/")


@pytest.fixture
def pack(shop: Shop) -> Pack:
    """A pack whose product has a leaflet in two languages and a product page, as an
    admin would add them."""
    pack = shop.pack()
    shop.link(pack, "gs1:pip", "https://example.com/pip", title="Product information")
    shop.link(pack, "gs1:epil", "https://example.com/leaflet-en.pdf", "en", "Leaflet")
    shop.link(pack, "gs1:epil", "https://example.com/leaflet-zh.pdf", "zh-CN", "说明书")
    return pack


def _dl(door: Door, pack: Pack) -> str:
    """The pack's Digital Link without its query string, as the suite strips it."""
    return door.url + pack.digital_link().split("?", 1)[0]


def _links(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def _linkset(http: httpx.Client, dl: str) -> httpx.Response:
    return http.get(dl, headers={"Accept": "application/linkset+json"})


def _without_link_type(location: str, link_type: str) -> str:
    """The redirect target with the suite's own linkType parameter taken off, as it does."""
    for mark in (f"?linkType={link_type}", f"&linkType={link_type}"):
        if mark in location:
            return location[:location.index(mark)]
    return location


def test_rdFile_the_description_file_has_what_the_schema_requires(door: Door) -> None:
    """rdFile: /.well-known/gs1resolver answers JSON with the resolver's root, its primary
    keys and its link type vocabularies (prefix like `gs1:`), as GS1's schema requires."""
    with door.client() as http:
        answer = http.get("/.well-known/gs1resolver", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    description = answer.json()
    assert description["resolverRoot"] == door.url
    assert "01" in description["supportedPrimaryKeys"]
    for vocabulary in description["supportedLinkType"]:
        assert re.fullmatch(r"[a-zA-Z_][A-Za-z0-9_-]*?:", vocabulary["prefix"])
        assert vocabulary["namespace"].startswith("https://")
    assert description["linkTypeDefaultCanBeLinkset"] is False
    assert description["jsonLdContextLocation"].startswith("https://")


def test_httpVersion_corsCheck_methodsCheck_on_the_plain_answer(door: Door, pack: Pack) -> None:
    """httpVersion, corsCheck, methodsCheck: the answer to the Digital Link itself is HTTP/1.1
    and carries the CORS headers, declaring GET, HEAD and OPTIONS."""
    with door.client() as http:
        for answer in (http.get(_dl(door, pack)), http.head(_dl(door, pack))):
            assert answer.http_version == "HTTP/1.1"
            assert answer.headers["access-control-allow-origin"] == "*"
            methods = answer.headers["access-control-allow-methods"]
            assert {"GET", "HEAD", "OPTIONS"} <= {m.strip() for m in methods.split(",")}


def test_linkOnRedirect_and_no_legacyLinkHeaders(door: Door, pack: Pack) -> None:
    """linkOnRedirect, legacyLinkHeaders: the redirect's Link header points to the linkset and
    lists no other link (listing every link was deprecated in resolver 1.0.0)."""
    with door.client() as http:
        answer = http.get(_dl(door, pack))
    assert answer.status_code == 307
    (link,) = _links(answer.headers["link"])
    assert 'rel="linkset"' in link and 'type="application/linkset+json"' in link
    assert 'rel="gs1:' not in answer.headers["link"]


def test_reportWith400_noErrorWith200_for_a_uri_with_a_stray_segment(door: Door,
                                                                     pack: Pack) -> None:
    """reportWith400, noErrorWith200: the Digital Link with `/foo` added is refused with 400
    and a reason, never a 200."""
    with door.client() as http:
        answer = http.get(_dl(door, pack) + "/foo")
    assert answer.status_code == 400
    assert answer.json()["detail"]


def test_trailingSlash_is_tolerated(door: Door, pack: Pack) -> None:
    """trailingSlash: with or without a trailing slash, the same status and the same target."""
    with door.client() as http:
        bare, slash = http.get(_dl(door, pack)), http.get(_dl(door, pack) + "/")
    assert (bare.status_code, bare.headers["location"]) == \
        (slash.status_code, slash.headers["location"])


def test_qsPassedOn_the_query_string_reaches_the_default_target(door: Door, pack: Pack
                                                               ) -> None:
    """qsPassedOn: `?foo=bar` on the Digital Link is passed on, as it is, to the default
    link's target."""
    with door.client() as http:
        answer = http.get(_dl(door, pack) + "?foo=bar")
        assert answer.status_code == 307
        assert "foo=bar" in answer.headers["location"]
        follow = http.get(answer.headers["location"])
    assert follow.status_code == 200 and 'data-outcome="genuine"' in follow.text


def test_ltLinksetNoRedirect_and_ltAcceptHeader_answer_the_linkset(door: Door, pack: Pack
                                                                  ) -> None:
    """ltLinksetNoRedirect, ltAcceptHeader: linkType=linkset, or the Accept header, get the
    linkset itself (200), never a redirect; linkType=all still works, as the suite tries it."""
    with door.client() as http:
        dl = _dl(door, pack)
        for answer in (http.get(dl + "?linkType=linkset"), http.get(dl + "?linkType=all"),
                       _linkset(http, dl)):
            assert answer.status_code == 200
            assert "location" not in answer.headers


def test_validLinkset_linksetJsonldCheck_declaredContentType(door: Door, pack: Pack) -> None:
    """validLinkset, linksetJsonldCheck, declaredContentType: the linkset meets GS1's linkset
    schema, comes as application/linkset+json, and its Link header names a JSON-LD context."""
    with door.client() as http:
        answer = _linkset(http, _dl(door, pack))
    jsonschema.validate(answer.json(), LINKSET_RULES)
    assert answer.headers["content-type"] == "application/linkset+json"
    assert any('rel="http://www.w3.org/ns/json-ld#context"' in link
               and 'type="application/ld+json"' in link
               for link in _links(answer.headers["link"]))


def _context(door: Door, pack: Pack, http: httpx.Client) -> dict[str, Any]:
    """The linkset's context object whose anchor is the pack's Digital Link."""
    contexts = _linkset(http, _dl(door, pack)).json()["linkset"]
    (context,) = [c for c in contexts if c["anchor"] == _dl(door, pack)]
    return {_VOCABULARY.sub("gs1:", key): value for key, value in context.items()}


def test_defaultLinkExists_singleDefaulLink_defaultTarget(door: Door, pack: Pack) -> None:
    """defaultLinkExists, singleDefaulLink, defaultTarget: exactly one gs1:defaultLink, with a
    title and nothing else, and the plain Digital Link redirects to exactly its href."""
    with door.client() as http:
        context = _context(door, pack, http)
        (default,) = context["gs1:defaultLink"]
        assert set(default) == {"href", "title"}
        assert http.get(_dl(door, pack)).headers["location"] == default["href"]


def test_loFor_each_link_type_redirects_to_its_link(door: Door, pack: Pack) -> None:
    """loFor…: each link type with one link redirects to it when asked by linkType; a type with
    several links in different languages redirects to the one of the language asked."""
    with door.client() as http:
        context = _context(door, pack, http)
        for link_type, links in context.items():
            if not link_type.startswith("gs1:"):
                continue
            for link in links:
                answer = http.get(_dl(door, pack), params={"linkType": link_type},
                                  headers={"Accept-Language": link.get("hreflang", ["en"])[0]})
                assert answer.status_code == 307, (link_type, answer.text)
                assert _without_link_type(answer.headers["location"], link_type) == \
                    link["href"], link_type


def test_multiple_links_with_the_same_attributes_answer_300(door: Door, shop: Shop) -> None:
    """Two links of one type that no attribute tells apart answer 300 Multiple Choices, listing
    both, rather than a guess."""
    pack = shop.pack()
    shop.link(pack, "gs1:smpc", "https://example.com/smpc-a.pdf", title="SmPC A")
    shop.link(pack, "gs1:smpc", "https://example.com/smpc-b.pdf", title="SmPC B")
    with door.client() as http:
        answer = http.get(_dl(door, pack), params={"linkType": "gs1:smpc"})
    assert answer.status_code == 300
    hrefs = {link["href"] for context in answer.json()["linkset"]
             for key, links in context.items() if key.endswith("/smpc") for link in links}
    assert hrefs == {"https://example.com/smpc-a.pdf", "https://example.com/smpc-b.pdf"}


def test_specificLinkTypeNotFound_is_404(door: Door, pack: Pack) -> None:
    """specificLinkTypeNotFound: linkType=gs1:nosuchlt answers 404."""
    with door.client() as http:
        answer = http.get(_dl(door, pack) + "?linkType=gs1:nosuchlt")
    assert answer.status_code == 404


def test_linkTypesDefined_every_gs1_link_type_is_ratified(door: Door, pack: Pack) -> None:
    """linkTypesDefined: every link type the linkset gives in the GS1 vocabulary is one GS1
    ratified."""
    with door.client() as http:
        context = _context(door, pack, http)
    used = {key.removeprefix("gs1:") for key in context if key.startswith("gs1:")}
    assert used and used <= RATIFIED, used - RATIFIED


def test_the_linkset_anchor_is_a_plausible_digital_link(door: Door, pack: Pack) -> None:
    """plausibleDL: the anchor the linkset speaks of matches the Digital Link URI syntax the
    suite checks first (RE2 of the Digital Link standard, numeric keys)."""
    with door.client() as http:
        context = _context(door, pack, http)
    assert re.match(r"^https?://[^/?#]+(/01/)(\d{4}[^/]+)(/[^/]+/[^/]+)*/?$",
                    context["anchor"])
    assert urlsplit(context["anchor"]).path.startswith(f"/01/{pack.gtin}")
