"""Resolver answers filled in from a product's template are, byte for byte, the answers the
resolver makes whole: for any lot, serial and expiry, plain or not, valid or not, any link type,
language and root, the first request of a shape and every one after."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pharmatrace.v1 import common_pb2 as pb

from frontdoor.answer_cache import Answer, Recording
from frontdoor.asgi import query
from frontdoor.http import accepted_languages
from frontdoor.resolver import finished
from frontdoor.resolver_templates import Made, Templates, shape_of
from tracecore import gs1
from tracecore.errors import InvalidArgument, NotFound
from tracecore.usecases.resolver import resolve

GTIN = "09501101530027"


class _Catalogue:
    """One product, the same record object on every read."""

    def __init__(self, product: pb.Product) -> None:
        self._product = product

    def owners(self, product_id: str) -> Sequence[str]:
        return ("acme",) if product_id == GTIN else ()

    def product(self, tenant: str, product_id: str) -> pb.Product:
        return self._product

    def sscc_owners(self, code: str) -> Sequence[str]:
        return ()


_LINKS = st.lists(st.builds(
    pb.ProductLink, link_type=st.sampled_from(["gs1:pip", "gs1:epil", "gs1:smpc"]),
    href=st.sampled_from(["https://example.com/pip", "https://example.com/l.pdf?v=2#p",
                          "https://example.com/491231/Qz0Xv"]),
    lang=st.sampled_from(["", "en", "zh"]), title=st.sampled_from(["", "Leaflet 说明书"])),
    max_size=4)
#: Lot and serial values: mostly plain, some needing percent-encoding, some too long.
_VALUES = st.text(st.sampled_from("AB9z_.~-/%!Qz0Xv"), min_size=1, max_size=22)
_DATES = st.sampled_from(["290630", "491231", "290600", "291340", "2906"])
_EXTRA = st.sampled_from(["", "linkType=gs1:epil", "linkType=linkset", "linkType=gs1:pip",
                          "linkType=all", "foo=bar", "99=1"])


@st.composite
def _requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A Digital Link request's path and query: the same form, other values."""
    path = f"/01/{GTIN}"
    for ai in ("22", "10", "21"):
        if draw(st.booleans()):
            path += f"/{ai}/{gs1.percent_encoded(draw(_VALUES))}"
    fields = [f"17={draw(_DATES)}"] if draw(st.booleans()) else []
    return path.encode(), "&".join([*fields, draw(_EXTRA)]).strip("&").encode()


def _answer_or_refusal(make: Callable[[], Answer]) -> Answer | str:
    try:
        return make()
    except (InvalidArgument, NotFound) as exc:
        return f"{type(exc).__name__}: {exc.message}"


def _maker(root: str, raw_query: bytes, linkset: bool, accept_language: str) -> Made:
    """What the front door's view does to make an answer whole."""

    def made(path: str, query_text: str, made_from: Recording) -> Answer:
        return finished(resolve(
            made_from, root=root, path=path, query=query_text,
            link_type=query({"query_string": raw_query}).get("linkType", ""),
            wants_linkset=linkset, languages=accepted_languages(accept_language)))

    return made


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(links=_LINKS, root=st.sampled_from(["https://id.example.com", "http://127.0.0.1:8080",
                                           "https://example.com/gs1"]),
       linkset=st.booleans(), accept_language=st.sampled_from(["", "zh-CN,zh;q=0.9", "en"]),
       requests=st.lists(_requests(), min_size=1, max_size=4))
def test_an_answer_filled_in_from_a_template_is_the_answer_made_whole(
        links: list[pb.ProductLink], root: str, linkset: bool, accept_language: str,
        requests: list[tuple[bytes, bytes]]) -> None:
    """Requests of one shape after another (the first makes the template, the next are filled
    in from it) get the answer, or the refusal, the resolver makes for each from scratch."""
    catalogue = _Catalogue(pb.Product(gtin=GTIN, name="Amoxicillin", links=links))
    templates = Templates(catalogue, 1 << 20)
    for raw_path, raw_query in [*requests, *requests, *requests]:
        made = _maker(root, raw_query, linkset, accept_language)
        whole = _answer_or_refusal(functools.partial(
            made, raw_path.decode(), raw_query.decode(), Recording(catalogue)))
        filled = _answer_or_refusal(functools.partial(
            templates.answer, root, raw_path, raw_query,
            (root, raw_path, raw_query, linkset, accept_language), Recording(catalogue), made))
        assert filled == whole


def test_the_packs_of_a_product_share_one_template() -> None:
    """Packs of one product, lot and expiry format are one shape: the template is made when
    the shape is seen a second time, and the answers after are filled in from it."""
    catalogue = _Catalogue(pb.Product(gtin=GTIN))
    templates = Templates(catalogue, 1 << 20)
    made_whole = []

    def made(path: str, query_text: str, made_from: Recording) -> Answer:
        made_whole.append(path)
        return finished(resolve(made_from, root="https://id.example.com", path=path,
                                query=query_text, link_type="", wants_linkset=False,
                                languages=[]))

    for serial in ("AAA1", "BBB2", "CCC3", "DDD4"):
        raw_path = f"/01/{GTIN}/10/L1/21/{serial}".encode()
        answer = templates.answer("https://id.example.com", raw_path, b"17=290630",
                                  ("https://id.example.com", raw_path, b"17=290630", False, ""),
                                  Recording(catalogue), made)
        assert dict(answer.headers)[b"link"].startswith(
            f"<https://id.example.com/01/{GTIN}/10/L1/21/{serial}?".encode())
    # The first two packs' answers and the template's stand-in answer; none after.
    assert len(made_whole) == 3 and len(templates) == 1


def test_values_that_percent_encoding_changes_are_not_taken_out() -> None:
    """A serial holding a percent-escape, a path with a trailing slash or a compressed link
    has no shape: its answer is made whole."""
    assert shape_of(f"/01/{GTIN}/21/A%2FB".encode(), b"") is None
    assert shape_of(f"/01/{GTIN}/21/AB/".encode(), b"") is None
    assert shape_of(b"/ARHKVAdpQg", b"") is None
    shape = shape_of(f"/01/{GTIN}/10/L1/21/AB".encode(), b"17=290630&linkType=gs1:pip")
    assert shape is not None
    assert shape.holes == (("10", "L1"), ("21", "AB"), ("17", "290630"))
    assert shape.filled(("L2", "CD", "300101")) == (f"/01/{GTIN}/10/L2/21/CD",
                                                    "17=300101&linkType=gs1:pip")
