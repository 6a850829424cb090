"""EPCIS 2.0 documents a partner might send, built for the integration tests."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tracecore.codes import parse

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
PARTY = "urn:pharmatrace:party:"


def commissioning(codes: Sequence[str], *, party: str, lot: str, expires_on: str,
                  when: str = "2026-03-05T09:30:00.000+08:00") -> dict[str, object]:
    """One ObjectEvent commissioning ``codes`` at ``party``, lot and expiry in its ILMD."""
    return {
        "type": "ObjectEvent",
        "eventTime": when,
        "eventTimeZoneOffset": when[-6:],
        "epcList": [_uri(code) for code in codes],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": PARTY + party},
        "ilmd": {"cbvmda:lotNumber": lot, "cbvmda:itemExpirationDate": expires_on},
    }


def document(events: Sequence[dict[str, object]]) -> str:
    """An EPCISDocument holding ``events``, as JSON text."""
    return json.dumps({
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-05T09:45:00Z",
        "epcisBody": {"eventList": list(events)},
    })


def _uri(code: str) -> str:
    parsed = parse(code).code
    return f"https://id.gs1.org/01/{parsed.product}/21/{parsed.serial}"
