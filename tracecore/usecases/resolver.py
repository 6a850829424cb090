"""The GS1 Digital Link resolver: which links a product offers, and which one a request gets.

Every product offers the consumer check page twice over, as its ``gs1:verificationService``
and as its ``gs1:defaultLink``; an admin adds any others (``gs1:pip``, ``gs1:epil``,
``gs1:recallStatus``, ``gs1:smpc``, ...) with a language and a title. A request names a link
type, or none for the default; among the links of that type the one in the language the
client prefers wins, else one meant for every language, else the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from pharmatrace.v1 import common_pb2 as pb

from tracecore import gs1, gs1_compression
from tracecore.errors import InvalidArgument, NotFound, ParseError
from tracecore.usecases.declare import PUBLIC, READERS, Scope, use_case

DEFAULT_LINK = "gs1:defaultLink"
VERIFICATION_SERVICE = "gs1:verificationService"
#: The link types a request may ask for the whole linkset with, besides the Accept header.
LINKSET_TYPES = frozenset({"linkset", "all"})
#: Where link types live when written in full (both forms are in use).
_VOCABULARIES = ("https://gs1.org/voc/", "http://gs1.org/voc/", "https://ref.gs1.org/voc/")
_CHECK_TITLE = "Is this pack genuine? 查验真伪"
#: Titles of links an admin added without one: every link of a GS1 linkset has a title.
_TITLES = {"gs1:pip": "Product information", "gs1:epil": "Patient information leaflet",
           "gs1:smpc": "Summary of product characteristics",
           "gs1:recallStatus": "Recall status", "gs1:leaflet": "Leaflet",
           "gs1:safetyInfo": "Safety information", "gs1:instructions": "Instructions"}


class Catalogue(Protocol):
    """The products a resolver can see, across the tenants it serves."""

    def owners(self, product_id: str) -> Sequence[str]:
        """The tenants that registered the GTIN or NMPA id, in a stable order."""

    def product(self, tenant: str, product_id: str) -> pb.Product:
        """A tenant's registered product (NotFound if it has none)."""

    def sscc_owners(self, code: str) -> Sequence[str]:
        """The tenants that allocated an SSCC (18 digits) from one of their pools."""


@dataclass(frozen=True, slots=True)
class Link:
    """One link a product offers."""

    link_type: str
    """Compact GS1 form, e.g. ``gs1:pip``."""
    href: str
    lang: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a Digital Link resolves to."""

    anchor: str
    """The identifier asked about, as a canonical Digital Link URI under the resolver's root."""
    item_description: str
    links: tuple[Link, ...]
    """Every link of the product: the check page first, then the admin's, in the order added."""
    target: Link | None
    """The link to redirect to (its href carrying the request's query); None: the linkset."""
    choices: tuple[Link, ...] = ()
    """Links of the asked type that nothing in the request tells apart (300 Multiple
    Choices), when there is more than one."""
    same_as: str = ""
    """For a compressed Digital Link (the anchor), the uncompressed one it stands for."""


@use_case(roles={PUBLIC, *READERS}, writes=False, scope=Scope.TENANT)
def resolve(catalogue: Catalogue, *, root: str, path: str, query: str, link_type: str,
            wants_linkset: bool, languages: Sequence[str]) -> Resolution:
    """The links of the identifier in a Digital Link ``path`` (``/01/{gtin}`` and its key
    qualifiers) and ``query``, and the one to redirect to.

    InvalidArgument (with the reason) for a URI that is not a valid Digital Link; NotFound for
    a GTIN no tenant registered, or a link type the product does not offer. A compressed
    Digital Link resolves as the uncompressed one it stands for.
    """
    try:
        # A compressed link is one path segment: a path of more is not looked at twice.
        expanded = (gs1_compression.expand(f"{root}{path}" + (f"?{query}" if query else ""))
                    if "/" not in path[1:] else None)
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field="uri") from None
    if expanded is None:
        return _resolve(catalogue, root=root, path=path, query=query, link_type=link_type,
                        wants_linkset=wants_linkset, languages=languages)
    plain_path, _, plain_query = expanded[len(root):].partition("?")
    resolution = _resolve(catalogue, root=root, path=plain_path, query=plain_query,
                          link_type=link_type, wants_linkset=wants_linkset, languages=languages)
    return replace(resolution, anchor=f"{root}{path}", same_as=resolution.anchor)


def _resolve(catalogue: Catalogue, *, root: str, path: str, query: str, link_type: str,
             wants_linkset: bool, languages: Sequence[str]) -> Resolution:
    try:
        elements = gs1.parse_digital_link(f"{root}{path}" + (f"?{query}" if query else ""))
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field="uri") from None
    gtin = elements["01"]
    owners = catalogue.owners(gtin)
    if not owners:
        raise NotFound(f"GTIN {gtin} is not known to this resolver", field="gtin")
    product = catalogue.product(owners[0], gtin)
    canonical = gs1.render_digital_link(elements, root)
    # The key (01 and its qualifiers) is the path of the canonical URI; the rest its query.
    anchor = canonical.partition("?")[0]
    passed_on = "&".join(p for p in query.split("&")
                         if p and not p.startswith("linkType=") and not p.split("=")[0].isdigit())
    check = f"{root}/check?code={gs1.percent_encoded(canonical)}"
    links = (Link(DEFAULT_LINK, check, title=_CHECK_TITLE),
             Link(VERIFICATION_SERVICE, check, title=_CHECK_TITLE),
             *(Link(li.link_type, li.href, li.lang, li.title or _title(li.link_type))
               for li in product.links))
    description = product.name or f"GTIN {gtin}"
    wanted = compact_link_type(link_type) if link_type else DEFAULT_LINK
    if wanted in LINKSET_TYPES or (wants_linkset and not link_type):
        return Resolution(anchor, description, links, None)
    candidates = [link for link in links if link.link_type == wanted]
    if not candidates:
        raise NotFound(f"this product has no {wanted} link", field="linkType")
    chosen = choose_language(candidates, languages)
    alike = tuple(c for c in candidates if c.lang.lower() == chosen.lang.lower())
    if len(alike) > 1:
        return Resolution(anchor, description, links, None, alike)
    # The request's own query goes on to the target; its AIs already are in the check link.
    query_on = passed_on if chosen.href == check else "&".join(
        p for p in query.split("&") if p and not p.startswith("linkType="))
    if query_on:
        chosen = Link(chosen.link_type, _with_query(chosen.href, query_on), chosen.lang,
                      chosen.title)
    return Resolution(anchor, description, links, chosen)


def compact_link_type(text: str) -> str:
    """``gs1:pip`` for ``gs1:pip``, ``pip`` or ``https://gs1.org/voc/pip``; ``linkset`` for
    ``linkset`` in any of these forms (and ``all`` likewise)."""
    name = text.removeprefix("gs1:")
    for vocabulary in _VOCABULARIES:
        if text.startswith(vocabulary):
            name = text[len(vocabulary):]
    return name if name in LINKSET_TYPES else "gs1:" + name


def choose_language(candidates: Sequence[Link], languages: Sequence[str]) -> Link:
    """The first candidate in the first language the client accepts (``zh`` accepts ``zh-CN``
    and the other way round), else one without a language, else the first."""
    for wanted in languages:
        primary = wanted.split("-", 1)[0]
        exact = [c for c in candidates if c.lang.lower() == wanted]
        if exact:
            return exact[0]
        close = [c for c in candidates if c.lang and c.lang.split("-", 1)[0].lower() == primary]
        if close:
            return close[0]
    neutral = [c for c in candidates if not c.lang]
    return neutral[0] if neutral else candidates[0]


def _title(link_type: str) -> str:
    return _TITLES.get(link_type) or link_type.removeprefix("gs1:")


def _with_query(href: str, query: str) -> str:
    head, _, fragment = href.partition("#")
    joined = head + ("&" if "?" in head else "?") + query
    return joined + (f"#{fragment}" if fragment else "")
