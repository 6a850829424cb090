"""EPCIS 2.0 JSON-LD events written as an EPCIS 2.0 XML query document (the standard's XML
binding, valid under the official XSD): what the REST binding answers a client that asks for
``application/xml``. The reverse of ``xml_reader``'s mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from tracecore.epcis.vocabulary import CBV_URNS

QUERY_NAMESPACE = "urn:epcglobal:epcis-query:xsd:2"
EPCIS_NAMESPACE = "urn:epcglobal:epcis:xsd:2"
_MDA = "urn:epcglobal:cbv:mda"

_BASE = ("eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "errorDeclaration",
         "certificationInfo")
_WHERE = ("bizStep", "disposition", "readPoint", "bizLocation", "bizTransactionList")
_LISTS = ("sourceList", "destinationList", "sensorElementList", "persistentDisposition")
#: The XSD's order of each event type's standard members (a sequence: order matters).
_ORDER: dict[str, tuple[str, ...]] = {
    "ObjectEvent": (*_BASE, "epcList", "action", *_WHERE, "quantityList", *_LISTS, "ilmd"),
    "AggregationEvent": (*_BASE, "parentID", "childEPCs", "action", *_WHERE,
                         "childQuantityList", *_LISTS),
    "TransactionEvent": (*_BASE, "bizTransactionList", "parentID", "epcList", "action",
                         "bizStep", "disposition", "readPoint", "bizLocation", "quantityList",
                         *_LISTS),
    "TransformationEvent": (*_BASE, "inputEPCList", "inputQuantityList", "outputEPCList",
                            "outputQuantityList", "transformationID", *_WHERE, *_LISTS,
                            "ilmd"),
    "AssociationEvent": (*_BASE, "parentID", "childEPCs", "childQuantityList", "action",
                         *_WHERE, *_LISTS),
}
_EPC_LISTS = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS = frozenset({"quantityList", "childQuantityList", "inputQuantityList",
                             "outputQuantityList"})
_VOCABULARY = {"bizStep": "bizstep", "disposition": "disp", "set": "disp", "unset": "disp",
               "reason": "er"}


def query_document_xml(context: Sequence[Any], events: Sequence[Mapping[str, Any]],
                       query_name: str, created: str, subscription_id: str = "") -> bytes:
    """An EPCISQueryDocument holding ``events`` (JSON-LD objects under ``context``)."""
    namespaces = _namespaces(context)
    root = Element(f"{{{QUERY_NAMESPACE}}}EPCISQueryDocument",
                   {"schemaVersion": "2.0", "creationDate": created})
    results = SubElement(SubElement(root, "EPCISBody"), f"{{{QUERY_NAMESPACE}}}QueryResults")
    SubElement(results, "queryName").text = query_name
    if subscription_id:
        SubElement(results, "subscriptionID").text = subscription_id
    event_list = SubElement(SubElement(results, "resultsBody"), "EventList")
    for event in events:
        _event(event_list, event, namespaces)
    return bytes(tostring(root, encoding="utf-8", xml_declaration=True))


def _namespaces(context: Sequence[Any]) -> dict[str, str]:
    """Prefix -> XML namespace of the extension members the context's inline entries name."""
    found = {"cbvmda": _MDA}
    for entry in context:
        if isinstance(entry, Mapping):
            found |= {k: v for k, v in entry.items() if isinstance(v, str)}
    return found


def _event(parent: Element, event: Mapping[str, Any], namespaces: Mapping[str, str]) -> None:
    kind = str(event.get("type", ""))
    order = _ORDER.get(kind)
    if order is None:
        return
    elem = SubElement(parent, kind)
    for name in order:
        if name in event:
            _standard(elem, name, event[name], namespaces)
    for name, value in event.items():
        if ":" in name and not name.startswith("@"):
            _extension(elem, name, value, namespaces)


def _standard(parent: Element, name: str, value: Any, namespaces: Mapping[str, str]) -> None:
    if name in _EPC_LISTS or name == "correctiveEventIDs":
        child = SubElement(parent, name)
        item = "epc" if name in _EPC_LISTS else "correctiveEventID"
        for text in value:
            SubElement(child, item).text = str(text)
    elif name in _QUANTITY_LISTS:
        child = SubElement(parent, name)
        for quantity in value:
            element = SubElement(child, "quantityElement")
            for member in ("epcClass", "quantity", "uom"):
                if member in quantity:
                    SubElement(element, member).text = _text(quantity[member])
    elif name == "bizTransactionList":
        _typed(SubElement(parent, name), value, "bizTransaction", "btt")
    elif name in ("sourceList", "destinationList"):
        _typed(SubElement(parent, name), value, name.removesuffix("List"), "sdt")
    elif name == "sensorElementList":
        child = SubElement(parent, name)
        for sensor in value:
            element = SubElement(child, "sensorElement")
            if "sensorMetadata" in sensor:
                _attributes(element, "sensorMetadata", sensor["sensorMetadata"], namespaces)
            for report in sensor.get("sensorReport", []):
                _attributes(element, "sensorReport", report, namespaces)
            _members(element, sensor, namespaces, skip={"sensorMetadata", "sensorReport"})
    elif name == "persistentDisposition":
        child = SubElement(parent, name)
        for member in ("unset", "set"):
            for term in value.get(member, []):
                SubElement(child, member).text = _urn(term, "disp")
    elif name in ("readPoint", "bizLocation"):
        child = SubElement(parent, name)
        SubElement(child, "id").text = str(value.get("id", ""))
        _members(child, value, namespaces, skip={"id"})
    elif name == "errorDeclaration":
        child = SubElement(parent, name)
        for member in ("declarationTime", "reason", "correctiveEventIDs"):
            if member in value:
                _standard(child, member, value[member], namespaces)
        _members(child, value, namespaces, skip={"declarationTime", "reason",
                                                  "correctiveEventIDs"})
    elif name == "ilmd":
        _members(SubElement(parent, name), value, namespaces, skip=set())
    elif name in _VOCABULARY:
        SubElement(parent, name).text = _urn(str(value), _VOCABULARY[name])
    else:
        SubElement(parent, name).text = _text(value)


def _typed(parent: Element, items: Sequence[Mapping[str, Any]], name: str, kind: str) -> None:
    for item in items:
        attributes = {"type": _urn(str(item["type"]), kind)} if "type" in item else {}
        SubElement(parent, name, attributes).text = str(item.get(name, ""))


def _attributes(parent: Element, name: str, values: Mapping[str, Any],
                namespaces: Mapping[str, str]) -> None:
    SubElement(parent, name, {_tag(k, namespaces): _text(v) for k, v in values.items()})


def _members(parent: Element, values: Mapping[str, Any], namespaces: Mapping[str, str], *,
             skip: set[str]) -> None:
    """Extension members (``prefix:name``) as elements of their namespace; the standard's
    unprefixed ones have no place here and are left to the JSON-LD answer."""
    for name, value in values.items():
        if name not in skip and ":" in name:
            _extension(parent, name, value, namespaces)


def _extension(parent: Element, name: str, value: Any, namespaces: Mapping[str, str]) -> None:
    for item in value if isinstance(value, list) else [value]:
        child = SubElement(parent, _tag(name, namespaces))
        if isinstance(item, Mapping):
            for key, inner in item.items():
                _extension(child, key, inner, namespaces)
        else:
            child.text = _text(item)


def _tag(name: str, namespaces: Mapping[str, str]) -> str:
    prefix, colon, local = name.partition(":")
    if not colon:
        return name
    namespace = namespaces.get(prefix, f"urn:pharmatrace:prefix:{prefix}")
    return f"{{{namespace.removesuffix('#')}}}{local}"


def _urn(term: str, kind: str) -> str:
    """A bare CBV 2.0 term as the CBV URN XML documents carry; a URI unchanged."""
    return term if ":" in term or kind not in CBV_URNS else f"urn:epcglobal:cbv:{kind}:{term}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
