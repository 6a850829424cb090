"""The compiled EPCIS schema check and jsonschema agree on what conforms: the compiled one
decides alone for documents it accepts, so it must refuse whatever jsonschema refuses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tracecore.epcis import schema

EVENT: dict[str, Any] = {
    "type": "ObjectEvent", "eventTime": "2026-03-05T09:30:00.000+08:00",
    "eventTimeZoneOffset": "+08:00", "epcList": ["https://id.gs1.org/01/09501101530003/21/A1"],
    "action": "ADD", "bizStep": "commissioning", "disposition": "active",
    "readPoint": {"id": "urn:epc:id:sgln:9501101.00001.0"},
    "ilmd": {"cbvmda:lotNumber": "L1"},
}


def _document(event: dict[str, Any]) -> dict[str, Any]:
    return {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2026-03-05T09:45:00Z", "epcisBody": {"eventList": [event]}}


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda event: event.__setitem__(key, value)


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "none": lambda event: None,
    "bad action": _set("action", "BOGUS"),
    "no action": lambda event: event.pop("action"),
    "bad time": _set("eventTime", "yesterday"),
    "time out of range": _set("eventTime", "2026-13-45T99:00:00Z"),
    "bad offset": _set("eventTimeZoneOffset", "8 hours"),
    "epc not a URI": _set("epcList", ["not a uri"]),
    "epcList not a list": _set("epcList", "https://id.gs1.org/01/09501101530003/21/A1"),
    "unknown type": _set("type", "MagicEvent"),
    "read point without id": _set("readPoint", {}),
    "quantity without class": _set("quantityList", [{"quantity": 3}]),
    "extension member": _set("example:temperature", {"@value": 4}),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_the_compiled_check_refuses_what_jsonschema_refuses(name: str) -> None:
    """Each changed event is refused by the compiled schema exactly when jsonschema refuses
    it."""
    event = copy.deepcopy(EVENT)
    MUTATIONS[name](event)
    doc = _document(event)
    refused_by_jsonschema = next(schema._validator().iter_errors(doc), None) is not None
    assert (not schema.conforms(doc)) == refused_by_jsonschema
