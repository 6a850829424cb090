"""Validation of master data (tenants, products, batches, parties) into canonical records."""

from __future__ import annotations

import datetime as dt
import re

from google.protobuf.internal.containers import RepeatedScalarFieldContainer
from pharmatrace.v1 import common_pb2 as pb

from tracecore import gs1, regions
from tracecore.errors import InvalidArgument, ParseError

_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_PARTY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NMPA_ID = re.compile(r"[0-9]{7}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A link type of the GS1 Web Vocabulary in its compact form, e.g. "gs1:pip".
_LINK_TYPE = re.compile(r"gs1:[a-z][A-Za-z]{1,63}")
# BCP 47 as resolvers compare it: a primary language and optional subtags ("en", "zh-Hans-CN").
_LANG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}")
_HREF = re.compile(r"https?://[^\s<>\"{}|\\^`\x00-\x1f\x7f]+", re.IGNORECASE)
MAX_NAME = 200
MAX_SHORT = 100
MAX_LIST = 100
MAX_LINKS = 50
MAX_HREF = 1000
MAX_PACK_QUANTITY = 100_000
#: Packaging levels by number, as people name them.
LEVEL_NAMES: dict[int, str] = {pb.PACKAGING_LEVEL_UNIT: "unit", pb.PACKAGING_LEVEL_BUNDLE: "bundle",
               pb.PACKAGING_LEVEL_CASE: "case", pb.PACKAGING_LEVEL_PALLET: "pallet"}


def tenant_id(text: str, field: str = "tenant") -> str:
    """A tenant id: 1 to 32 of [a-z0-9-], starting with a letter or digit."""
    if not _TENANT.fullmatch(text):
        raise InvalidArgument("must be 1 to 32 characters of a-z, 0-9 and '-'", field=field)
    return text


def party_id(text: str, field: str = "party_id") -> str:
    if not _PARTY_ID.fullmatch(text):
        raise InvalidArgument("must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
                              field=field)
    return text


def product_identifier(text: str, field: str = "product") -> str:
    """A product's identifier as the ledger indexes it: GTIN-14, or the 7-digit NMPA id."""
    text = text.strip()
    if not text:
        raise InvalidArgument("is required (a GTIN or a 7-digit NMPA drug identifier)", field=field)
    if _NMPA_ID.fullmatch(text):
        return text
    try:
        return gs1.normalize_gtin(text)
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field=field) from exc


def product(p: pb.Product) -> pb.Product:
    """A registered product, canonical; InvalidArgument naming the first bad field."""
    out = pb.Product()
    out.CopyFrom(p)
    if p.gtin:
        try:
            out.gtin = gs1.normalize_gtin(p.gtin)
        except ParseError as exc:
            raise InvalidArgument(exc.reason, field="product.gtin") from exc
    if p.nmpa_id and not _NMPA_ID.fullmatch(p.nmpa_id):
        raise InvalidArgument("must be the 7-digit NMPA drug identifier", field="product.nmpa_id")
    if p.scheme == pb.SCHEME_UNSPECIFIED:
        out.scheme = pb.SCHEME_GS1 if p.gtin else pb.SCHEME_NMPA
    if out.scheme == pb.SCHEME_GS1 and not out.gtin:
        raise InvalidArgument("is required for a GS1 product", field="product.gtin")
    if out.scheme == pb.SCHEME_NMPA and not out.nmpa_id:
        raise InvalidArgument("is required for an NMPA product", field="product.nmpa_id")
    if out.scheme not in (pb.SCHEME_GS1, pb.SCHEME_NMPA):
        raise InvalidArgument("unknown scheme", field="product.scheme")
    _text(p.name, "product.name", MAX_NAME, required=True)
    _text(p.form, "product.form", MAX_SHORT)
    _text(p.strength, "product.strength", MAX_SHORT)
    _text(p.approval_number, "product.approval_number", MAX_SHORT)
    _text(p.generic_name, "product.generic_name", MAX_NAME)
    _text(p.pack_spec, "product.pack_spec", MAX_SHORT)
    _text(p.mah, "product.mah", MAX_NAME)
    _text(p.manufacturer, "product.manufacturer", MAX_NAME)
    if len(p.links) > MAX_LINKS:
        raise InvalidArgument(f"at most {MAX_LINKS}", field="product.links")
    for i, link in enumerate(out.links):
        link.CopyFrom(product_link(link, f"product.links[{i}]"))
    below: int = pb.PACKAGING_LEVEL_UNIT
    for i, level in enumerate(out.hierarchy):
        level.CopyFrom(_pack_level(level, below, f"product.hierarchy[{i}]"))
        below = level.level
    out.created_at_ms = 0
    return out


def _pack_level(level: pb.PackLevel, below: int, field: str) -> pb.PackLevel:
    """One level of a packaging hierarchy: above the level before it (the unit for the first),
    a quantity in range, its GTIN canonical when given."""
    out = pb.PackLevel()
    out.CopyFrom(level)
    if level.level not in pb.PackagingLevel.values() or level.level <= below:
        raise InvalidArgument(f"must be a level above {LEVEL_NAMES[below]}s (bundle, case or "
                              "pallet, lowest first)", field=f"{field}.level")
    if not 1 <= level.quantity <= MAX_PACK_QUANTITY:
        raise InvalidArgument(f"must be 1 to {MAX_PACK_QUANTITY:,} packs of the level below",
                              field=f"{field}.quantity")
    if level.gtin:
        try:
            out.gtin = gs1.normalize_gtin(level.gtin)
        except ParseError as exc:
            raise InvalidArgument(exc.reason, field=f"{field}.gtin") from exc
    return out


def product_link(link: pb.ProductLink, field: str = "link") -> pb.ProductLink:
    """A resolver link, canonical: a gs1: link type, an absolute http(s) URL, an optional
    language tag (lower-case primary subtag) and title."""
    out = pb.ProductLink()
    out.CopyFrom(link)
    out.link_type, out.lang = link_kind(link.link_type, link.lang, field)
    if len(link.href) > MAX_HREF or not _HREF.fullmatch(link.href):
        raise InvalidArgument(f"must be an absolute http(s) URL of at most {MAX_HREF} characters",
                              field=f"{field}.href")
    _text(link.title, f"{field}.title", MAX_NAME)
    return out


def link_kind(link_type: str, lang: str, field: str = "link") -> tuple[str, str]:
    """A link's type and language as ``product_link`` keeps them: a gs1: link type, an
    optional language tag with its primary subtag in lower case."""
    if not _LINK_TYPE.fullmatch(link_type):
        raise InvalidArgument("must be a GS1 link type such as gs1:pip or gs1:epil",
                              field=f"{field}.link_type")
    if not lang:
        return link_type, ""
    if not _LANG.fullmatch(lang):
        raise InvalidArgument("must be a language tag such as en or zh-CN", field=f"{field}.lang")
    primary, _, rest = lang.partition("-")
    return link_type, primary + ("-" + rest if rest else "")


def identifiers(p: pb.Product) -> list[str]:
    """Every identifier a registered product answers to."""
    return [i for i in (p.gtin, p.nmpa_id) if i]


def code_product(p: pb.Product) -> str:
    """The identifier the product's codes carry under its scheme."""
    return p.gtin if p.scheme == pb.SCHEME_GS1 else p.nmpa_id


def batch(b: pb.Batch) -> pb.Batch:
    """A batch, canonical: lot in GS1 character set 82, ISO dates, valid region prefixes."""
    out = pb.Batch()
    out.CopyFrom(b)
    out.product = product_identifier(b.product, "batch.product")
    try:
        gs1.check_value("10", b.lot)
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field="batch.lot") from exc
    made = iso_date(b.manufactured_on, "batch.manufactured_on", required=False)
    expires = iso_date(b.expires_on, "batch.expires_on", required=True)
    if made is not None and expires is not None and expires < made:
        raise InvalidArgument("is before manufactured_on", field="batch.expires_on")
    if len(b.materials) > MAX_LIST:
        raise InvalidArgument(f"at most {MAX_LIST}", field="batch.materials")
    for i, m in enumerate(b.materials):
        _text(m.material, f"batch.materials[{i}].material", MAX_NAME, required=True)
        _text(m.supplier, f"batch.materials[{i}].supplier", MAX_NAME, required=True)
        _text(m.supplier_lot, f"batch.materials[{i}].supplier_lot", MAX_SHORT, required=True)
        _text(m.quantity, f"batch.materials[{i}].quantity", MAX_SHORT)
    _regions(out.authorised_regions, "batch.authorised_regions")
    out.created_at_ms = 0
    return out


def party(p: pb.Party) -> pb.Party:
    """A party, canonical: id, optional GLN with check digit, GB/T 2260 region."""
    out = pb.Party()
    out.CopyFrom(p)
    party_id(p.party_id, "party.party_id")
    _text(p.name, "party.name", MAX_NAME, required=True)
    if p.gln and not (len(p.gln) == 13 and p.gln.isascii() and p.gln.isdigit()
                      and gs1.check_digit(p.gln[:-1]) == int(p.gln[-1])):
        raise InvalidArgument("must be a 13-digit GLN with a valid check digit",
                              field="party.gln")
    if p.region:
        out.region = regions.parse_region(p.region, field="party.region")
    if p.kind not in pb.PartyKind.values():
        raise InvalidArgument("unknown party kind", field="party.kind")
    _regions(out.authorised_regions, "party.authorised_regions")
    out.created_at_ms = 0
    return out


def not_expired(expires_on: str, today: dt.date, field: str) -> None:
    """An expiry date (YYYY-MM-DD) that is not before ``today``: packs of an expired batch must
    not reach the market, so such a batch is refused when it is registered."""
    expires = iso_date(expires_on, field, required=True)
    if expires is not None and expires < today:
        raise InvalidArgument(f"{expires.isoformat()} is before today ({today.isoformat()}): "
                              "an already expired batch cannot be registered", field=field)


def iso_date(text: str, field: str, *, required: bool) -> dt.date | None:
    if not text:
        if required:
            raise InvalidArgument("is required (YYYY-MM-DD)", field=field)
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument("must be a date YYYY-MM-DD", field=field) from None


def _regions(prefixes: RepeatedScalarFieldContainer[str], field: str) -> None:
    """Validates region prefixes in place, rewriting "440000" to its canonical "44"."""
    if len(prefixes) > MAX_LIST:
        raise InvalidArgument(f"at most {MAX_LIST}", field=field)
    normalized = [regions.parse_region_prefix(r, field=f"{field}[{i}]")
                  for i, r in enumerate(prefixes)]
    del prefixes[:]
    prefixes.extend(normalized)


def _text(value: str, field: str, limit: int, *, required: bool = False) -> None:
    if required and not value.strip():
        raise InvalidArgument("is required", field=field)
    if len(value) > limit:
        raise InvalidArgument(f"at most {limit} characters", field=field)
