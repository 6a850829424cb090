"""EPCIS 1.2 and 2.0 XML documents, validated against the official XSDs, as the EPCIS 2.0
JSON-LD document they stand for (the mapping of GS1's 1.2-to-2.0 converter and of the
standard's JSON binding)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import xmlschema

from tracecore.epcis.vocabulary import CBV_URNS, CONTEXT_URL
from tracecore.errors import InvalidArgument

_NAMESPACES = {"urn:epcglobal:epcis:xsd:1": "1.2", "urn:epcglobal:epcis:xsd:2": "2.0"}

_SCHEMAS = {"1.2": "xsd-1.2/EPCglobal-epcis-1_2.xsd", "2.0": "xsd-2.0/EPCglobal-epcis-2_0.xsd"}

# Namespaces whose JSON-LD prefixes the standard context already defines (or that hold no
# members of events).
_STANDARD = frozenset({"http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader",
                       "urn:epcglobal:cbv:mda", "http://www.w3.org/2001/XMLSchema-instance"})

_EVENT_TYPES = frozenset({"ObjectEvent", "AggregationEvent", "TransactionEvent",
                          "TransformationEvent", "AssociationEvent"})

_EPC_LISTS = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})

_QUANTITY_LISTS = frozenset({"quantityList", "childQuantityList", "inputQuantityList",
                             "outputQuantityList"})

# The element holding a vocabulary value, and the CBV 1.x URN kind of its bare 2.0 form.
_VOCABULARY = {"bizStep": "bizstep", "disposition": "disp", "set": "disp", "unset": "disp",
               "reason": "er"}

# Wrappers 1.2 puts around what 2.0 made ordinary members.
_WRAPPERS = frozenset({"extension", "baseExtension"})

_NUMBERS = frozenset({"value", "minValue", "maxValue", "meanValue", "sDev", "percRank",
                      "percValue"})

_MAX_ERRORS = 1000  # a hostile document's errors are not all worth reading


def document_of_xml(text: str) -> tuple[dict[str, Any], dict[int, tuple[str, str]]]:
    """(the EPCIS 2.0 JSON-LD document of an EPCIS 1.2 or 2.0 XML document, {event index:
    (JSON path, reason)} of the events the XSD refuses). A document that is not EPCIS XML, or
    whose problems lie outside its events, raises InvalidArgument."""
    try:
        resource = xmlschema.XMLResource(text, defuse="always")
    except (xmlschema.XMLResourceError, SyntaxError, ValueError) as exc:
        raise InvalidArgument(f"not XML: {exc}", field="document") from None
    root = resource.root
    namespace, _, name = root.tag[1:].partition("}")
    version = _NAMESPACES.get(namespace)
    if name != "EPCISDocument" or version is None:
        raise InvalidArgument("must be an EPCIS 1.2 or 2.0 EPCISDocument", field="document")
    events = list(_events(root))
    owner = {id(node): i for i, event in enumerate(events) for node in event.iter()}
    refused: dict[int, tuple[str, str]] = {}
    for n, error in enumerate(_schema(version).iter_errors(resource)):
        if n >= _MAX_ERRORS:
            break
        elem = getattr(error, "elem", None)
        index = owner.get(id(elem)) if elem is not None else None
        reason = (error.reason or str(error)).splitlines()[0][:200]
        if index is None:
            raise InvalidArgument(f"not valid under the EPCIS {version} XSD: {reason}",
                                  field=error.path or "document")
        refused.setdefault(index, (f"$.epcisBody.eventList[{index}]", reason))
    # Extension members are named with the prefixes the document declared.
    prefixes = {ns: prefix for prefix, ns in resource.get_namespaces().items()
                if prefix and ns not in _NAMESPACES and ns not in _STANDARD}
    prefixes["urn:epcglobal:cbv:mda"] = "cbvmda"  # the standard context's own prefix
    doc: dict[str, Any] = {"@context": [CONTEXT_URL], "type": "EPCISDocument",
                           "schemaVersion": "2.0",
                           "creationDate": root.get("creationDate", "")}
    converted: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        try:
            # An event the XSD refused is left as its bare type: it is not read further.
            converted.append({"type": event.tag} if i in refused else _event(event, prefixes))
        except ValueError as exc:
            refused[i] = (f"$.epcisBody.eventList[{i}]", f"not a number: {exc}"[:200])
            converted.append({"type": event.tag})
    doc["epcisBody"] = {"eventList": converted}
    used = {prefix: ns for ns, prefix in prefixes.items()
            if ns not in _STANDARD and _uses(doc, prefix)}
    if used:
        doc["@context"].append(used)
    return doc, refused


def _uses(node: Any, prefix: str) -> bool:
    if isinstance(node, dict):
        return any(k.startswith(prefix + ":") or _uses(v, prefix) for k, v in node.items())
    if isinstance(node, list):
        return any(_uses(v, prefix) for v in node)
    return False


@functools.cache
def _schema(version: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(Path(__file__).parent.parent / "epcis_schema"
                                   / _SCHEMAS[version]))


def _events(root: Element) -> Iterator[Element]:
    """The document's events in order; 1.2 keeps newer types inside an extension."""
    for body in root.iter("EPCISBody"):
        for event_list in body.iter("EventList"):
            for child in event_list.iter():
                if child.tag in _EVENT_TYPES:
                    yield child


def _event(elem: Element, prefixes: dict[str, str]) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": elem.tag}
    wire |= _members(elem, prefixes)
    return wire


def _members(elem: Element, prefixes: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in _unwrapped(elem):
        key = _key(child.tag, prefixes)
        value = _value(child, prefixes)
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    return out


def _unwrapped(elem: Element) -> Iterator[Element]:
    for child in elem:
        if child.tag in _WRAPPERS:
            yield from _unwrapped(child)
        else:
            yield child


def _value(elem: Element, prefixes: dict[str, str]) -> Any:
    tag = elem.tag
    if tag in _EPC_LISTS or tag == "correctiveEventIDs":
        return [_text(child) for child in elem]
    if tag in _QUANTITY_LISTS:
        return [_quantity(child) for child in elem]
    if tag == "bizTransactionList":
        return [_typed(child, "bizTransaction", "btt") for child in elem]
    if tag in ("sourceList", "destinationList"):
        return [_typed(child, child.tag, "sdt") for child in elem]
    if tag == "sensorElementList":
        return [_sensor(child, prefixes) for child in elem]
    if tag == "persistentDisposition":
        found: dict[str, list[str]] = {}
        for child in elem:
            found.setdefault(child.tag, []).append(_term(_text(child), "disp"))
        return found
    if tag in _VOCABULARY:
        return _term(_text(elem), _VOCABULARY[tag])
    if tag in ("readPoint", "bizLocation", "errorDeclaration", "ilmd") or len(elem):
        return _members(elem, prefixes)
    return _text(elem)


def _quantity(elem: Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        if child.tag != "quantity":
            out[child.tag] = _text(child)
        elif _text(child):  # a nil quantity is an unknown one: JSON leaves it out
            out[child.tag] = _number(_text(child))
    return out


def _typed(elem: Element, name: str, kind: str) -> dict[str, str]:
    out = {"type": _term(elem.get("type", ""), kind)} if elem.get("type") else {}
    return out | {name: _text(elem)}


def _sensor(elem: Element, prefixes: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in _unwrapped(elem):
        if child.tag == "sensorMetadata":
            out["sensorMetadata"] = _attributes(child, prefixes)
        elif child.tag == "sensorReport":
            out.setdefault("sensorReport", []).append(_attributes(child, prefixes))
        else:
            out[_key(child.tag, prefixes)] = _value(child, prefixes)
    return out


def _attributes(elem: Element, prefixes: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in elem.attrib.items():
        key = _key(name, prefixes)
        if key in _NUMBERS:
            out[key] = _number(value)
        elif key == "booleanValue":
            out[key] = value.strip() in ("true", "1")
        else:
            out[key] = value
    return out


def _number(text: str) -> float | int:
    """A decimal as JSON writes it: 200, not 200.0."""
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() \
        else value


def _key(tag: str, prefixes: Mapping[str, str]) -> str:
    """An element's JSON member name: its own name in no namespace, else prefix:name."""
    if not tag.startswith("{"):
        return tag
    namespace, _, local = tag[1:].partition("}")
    prefix = prefixes.get(namespace)
    if prefix is None and isinstance(prefixes, dict):
        prefix = prefixes[namespace] = f"ext{len(prefixes) + 1}"
    return f"{prefix}:{local}"


def _term(value: str, kind: str) -> str:
    """A CBV 1.x URN as the bare CBV 2.0 term JSON uses; anything else unchanged."""
    urn = f"urn:epcglobal:cbv:{kind}:"
    return value[len(urn):] if value.startswith(urn) and kind in CBV_URNS else value


def _text(elem: Element) -> str:
    return (elem.text or "").strip()
