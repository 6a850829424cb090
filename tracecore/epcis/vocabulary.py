"""How pharmatrace events are written in EPCIS 2.0: the event table (type, action, CBV bizStep and
disposition of each kind of event), CBV terms, JSON-LD prefixes, the extension fields, and the
wire forms of times and dates."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tracecore.events import EventKind
from tracecore.status import Status

CONTEXT_URL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
"""The standard EPCIS 2.0 JSON-LD context."""

EXTENSION_PREFIX = "pharmatrace"

EXTENSION_NAMESPACE = "urn:pharmatrace:epcis:"
"""Namespace of the few fields EPCIS has no place for: status, reason, region and level."""

NMPA_URI_PREFIX = "urn:pharmatrace:nmpa:"
"""An NMPA 20-digit code has no GS1 EPC form; EPCIS carries it as this prefix + the 20 digits."""

NMPA_CLASS_PREFIX = "urn:pharmatrace:nmpa-class:"
"""An NMPA drug identifier (7 digits), then ":" and a lot, as an EPCIS class of packs."""

IdForm = Literal["epc", "digital-link"]
"""How GS1 codes are written: SGTIN EPC URIs, or GS1 Digital Link URIs."""

OBJECT, AGGREGATION = "ObjectEvent", "AggregationEvent"

CBV = "https://ref.gs1.org/cbv/"

CANONICAL_HOST = "https://id.gs1.org"

STANDARD_PREFIXES: Mapping[str, str] = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": CBV,
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": "https://gs1.org/voc/",
}

LOT = "cbvmda:lotNumber"

EXPIRY = "cbvmda:itemExpirationDate"

EXTENSIONS = ("status", "reason", "region", "level", "replaces", "mintedBy")

LEVELS = range(1, 5)  # unit, bundle, case, pallet

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

TZ_OFFSET = re.compile(r"[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00)")  # the schema's own pattern

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# CBV 1.x URN vocabulary, as the event hash rewrites it to CBV 2.0 web URIs.
CBV_URNS = {"bizstep": "BizStep-", "disp": "Disp-", "btt": "BTT-", "sdt": "SDT-", "er": "ER-"}


@dataclass(frozen=True, slots=True)
class Row:
    """One kind of pharmatrace event as EPCIS writes it."""

    kind: EventKind
    target: Status | None
    type: str
    action: str
    biz_step: str
    disposition: str
    status: Status | None
    """The packs' status after the event; ``pharmatrace:status`` when CBV alone reads otherwise."""
    at_party: bool = False
    """The packs stay at the event's party, so it is the bizLocation as well as the readPoint."""

# bizStep and disposition follow events.CBV. The action follows EPCIS: ADD creates (commissioning,
# packing), DELETE ends an identifier for good (an unused code voided, a pack destroyed, a
# container unpacked), OBSERVE leaves the pack in existence, which is why decommissioned statuses
# (reversible under EU FMD Art. 13) are OBSERVE even where CBV's step is "decommissioning".
# Where two rows share type, action, bizStep and disposition, the first is how an import reads
# them and the others carry pharmatrace:status.
ROWS = (
    Row(EventKind.COMMISSION, None, OBJECT, "ADD", "commissioning", "active", Status.ACTIVE,
        at_party=True),
    Row(EventKind.VOID, None, OBJECT, "DELETE", "decommissioning", "inactive", Status.VOIDED),
    Row(EventKind.AGGREGATE, None, AGGREGATION, "ADD", "packing", "in_progress", None,
        at_party=True),
    Row(EventKind.DISAGGREGATE, None, AGGREGATION, "DELETE", "unpacking", "in_progress", None,
        at_party=True),
    Row(EventKind.SHIP, None, OBJECT, "OBSERVE", "shipping", "in_transit", None),
    Row(EventKind.RECEIVE, None, OBJECT, "OBSERVE", "receiving", "in_progress", None,
        at_party=True),
    Row(EventKind.UNDO, None, OBJECT, "OBSERVE", "receiving", "active", Status.ACTIVE,
        at_party=True),
    Row(EventKind.DECOMMISSION, Status.DISPENSED, OBJECT, "OBSERVE", "dispensing", "dispensed",
        Status.DISPENSED),
    Row(EventKind.DECOMMISSION, Status.FREE_SAMPLE, OBJECT, "OBSERVE", "dispensing", "dispensed",
        Status.FREE_SAMPLE),
    Row(EventKind.DECOMMISSION, Status.EXPORTED, OBJECT, "OBSERVE", "departing", "in_transit",
        Status.EXPORTED),
    # CBV 2.0 has no "sampled" disposition: a sample is out of sale.
    Row(EventKind.DECOMMISSION, Status.SAMPLE, OBJECT, "OBSERVE", "sampling",
        "non_sellable_other", Status.SAMPLE),
    Row(EventKind.DECOMMISSION, Status.CHECKED_OUT, OBJECT, "OBSERVE", "decommissioning",
        "inactive", Status.CHECKED_OUT),
    Row(EventKind.DECOMMISSION, Status.LOCKED, OBJECT, "OBSERVE", "holding",
        "non_sellable_other", Status.LOCKED, at_party=True),
    Row(EventKind.WITHDRAW, None, OBJECT, "OBSERVE", "holding", "non_sellable_other",
        Status.WITHDRAWN),
    Row(EventKind.DESTROY, None, OBJECT, "DELETE", "destroying", "destroyed", Status.DESTROYED),
    Row(EventKind.REPORT_STOLEN, None, OBJECT, "OBSERVE", "holding", "stolen", Status.STOLEN),
    Row(EventKind.RECALL, None, OBJECT, "OBSERVE", "holding", "recalled", Status.RECALLED),
)

ROW_OF = {(row.kind, row.target): row for row in ROWS}

EXPORT_PREFIXES = {**STANDARD_PREFIXES, EXTENSION_PREFIX: EXTENSION_NAMESPACE}


def is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def json_member(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def reading(type_: str, action: str, biz_step: str, disposition: str | None,
             status: Status | None) -> Row | None:
    """The first row that writes an event this way, with this status if one is given.

    A partner may leave the disposition out; the table lists the most cautious reading of a
    bizStep first (receiving before undo, locked before withdrawn).
    """
    for row in ROWS:
        if (row.type, row.action, row.biz_step) == (type_, action, biz_step) \
                and disposition in (None, row.disposition) and status in (None, row.status):
            return row
    return None


def utc_text(ms: int) -> str:
    utc = _EPOCH + dt.timedelta(milliseconds=ms)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def local_text(ms: int, tz_offset: str) -> str:
    sign = -1 if tz_offset[0] == "-" else 1
    offset = dt.timedelta(hours=int(tz_offset[1:3]), minutes=int(tz_offset[4:6])) * sign
    local = _EPOCH + dt.timedelta(milliseconds=ms) + offset
    return f"{local:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}{tz_offset}"


def epoch_ms(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time, rounded half up as the event hash does."""
    since = dt.datetime.fromisoformat(text.upper()) - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1000 + (since.microseconds + 500) // 1000


def cbv_term(value: str, kind: str) -> str:
    """The bare CBV term of a bare, ``cbv:``-prefixed or web URI vocabulary value."""
    for prefix in (CBV + kind, "cbv:" + kind):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def context_prefixes(context: object, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the JSON-LD prefixes a @context defines inline."""
    prefixes = dict(base)
    for entry in context if isinstance(context, list) else [context]:
        if isinstance(entry, dict):
            for term, value in entry.items():
                iri = value.get("@id") if isinstance(value, dict) else value
                if isinstance(iri, str) and not term.startswith("@"):
                    prefixes[term] = iri
    return prefixes


def why_of(text: str) -> tuple[str, str]:
    """(bizStep, disposition) of an EPCIS event kept as received, as bare CBV terms where CBV
    defines them; "" for what it leaves out."""
    wire = json.loads(text) if text else {}
    step, disposition = wire.get("bizStep", ""), wire.get("disposition", "")
    return (cbv_term(step, "BizStep-") if isinstance(step, str) else "",
            cbv_term(disposition, "Disp-") if isinstance(disposition, str) else "")


def inline_context(context: object) -> list[dict[str, object]]:
    """The inline (object) entries of a @context, which define a document's own prefixes."""
    return [entry for entry in (context if isinstance(context, list) else [context])
            if isinstance(entry, dict)]


def expand(name: str, prefixes: Mapping[str, str]) -> str:
    prefix, colon, local = name.partition(":")
    return prefixes[prefix] + local if colon and prefix in prefixes else name
