"""The CBV 2.0 event hash ID of an EPCIS event, as GS1's reference generator computes it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

from tracecore.codes import Form, parse, render
from tracecore.epcis.identifiers import GLN_URI, gln_from
from tracecore.epcis.vocabulary import CANONICAL_HOST, CBV, CBV_URNS, epoch_ms, expand, utc_text
from tracecore.errors import ParseError

_HASH_ORDER = (
    "eventTime", "eventTimeZoneOffset", "epcList", "parentID", "inputEPCList", "childEPCs",
    "outputEPCList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList",
    "destinationList", "ilmd",
)

_NOT_HASHED = frozenset({"@context", "type", "eventID", "recordTime"})

_EPC_LISTS = frozenset({"epcList", "inputEPCList", "childEPCs", "outputEPCList"})

_TYPED_LISTS = {
    "bizTransactionList": ("bizTransaction", "BTT-"),
    "sourceList": ("source", "SDT-"),
    "destinationList": ("destination", "SDT-"),
}


def hash_id(wire: Mapping[str, Any], prefixes: Mapping[str, str]) -> str:
    """The CBV 2.0 event hash ID of an EPCIS event: ``ni:///sha-256;{hex}?ver=CBV2.0``.

    As GS1's reference "EPCIS Event Hash Generator" computes it (a test checks one of its
    published hashes): SHA-256 of a pre-hash string of the event's fields in the canonical order,
    each "name=value", a list as its name then its sorted entries; times in UTC to the
    millisecond with Z; CBV terms as https://ref.gs1.org/cbv/ URIs; SGTIN EPC URIs and Digital
    Links as canonical Digital Links on id.gs1.org (SGLN and PGLN as /414/ and /417/); CURIEs
    expanded; ILMD and extension fields as "{namespace}local=value", sorted; eventID and
    recordTime left out. Quantity lists and sensor data have no canonical form here:
    ``import_document`` refuses them before it hashes an event.
    """
    digest = hashlib.sha256(_prehash(wire, prefixes).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def _prehash(wire: Mapping[str, Any], prefixes: Mapping[str, str]) -> str:
    parts = [f"eventType={wire['type']}"]
    for key in _HASH_ORDER:
        if key in wire:
            parts.append(_hashed_field(key, wire[key], prefixes))
    parts.extend(sorted(text for key, value in wire.items()
                        if key not in _NOT_HASHED and key not in _HASH_ORDER
                        for text in _hashed_extension(key, value, prefixes)))
    return "".join(parts)


def _hashed_field(key: str, value: Any, prefixes: Mapping[str, str]) -> str:
    if key == "eventTime":
        return f"eventTime={utc_text(epoch_ms(value))}"
    if key in _EPC_LISTS:
        return _hashed_list(key, (f"epc={_canonical(epc, prefixes)}" for epc in value))
    if key == "bizStep":
        return f"bizStep={_vocabulary(value, 'BizStep-', prefixes)}"
    if key == "disposition":
        return f"disposition={_vocabulary(value, 'Disp-', prefixes)}"
    if key == "persistentDisposition":
        return _hashed_list(key, (f"{which}={_vocabulary(term, 'Disp-', prefixes)}"
                                  for which in ("set", "unset") for term in value.get(which, ())))
    if key in ("readPoint", "bizLocation"):
        rest = sorted(text for name, item in value.items() if name != "id"
                      for text in _hashed_extension(name, item, prefixes))
        return f"{key}id={_canonical(value['id'], prefixes)}" + "".join(rest)
    if key in _TYPED_LISTS:
        name, kind = _TYPED_LISTS[key]
        return _hashed_list(key, (
            f"{name}={_canonical(entry[name], prefixes)}"
            + (f"type={_vocabulary(entry['type'], kind, prefixes)}" if "type" in entry else "")
            for entry in value))
    if key == "ilmd":
        return _hashed_list(key, (text for name, item in value.items()
                                  for text in _hashed_extension(name, item, prefixes)))
    return f"{key}={_scalar(value, prefixes)}"


def _hashed_list(key: str, entries: Iterable[str]) -> str:
    texts = sorted(entries)
    return key + "".join(texts) if texts else ""


def _hashed_extension(key: str, value: Any, prefixes: Mapping[str, str]) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _hashed_extension(key, item, prefixes)
        return
    iri = expand(key, prefixes)
    # As XML names it: the namespace keeps a trailing "/" or "#" but not the ":" that only
    # JSON-LD needs to join a URN namespace to the local name.
    cut = max(iri.rfind("/"), iri.rfind("#"), iri.rfind(":"))
    namespace, local = iri[:cut + 1], iri[cut + 1:]
    name = f"{{{namespace.removesuffix(':')}}}{local}" if cut >= 0 else key
    if isinstance(value, dict):
        yield name + "".join(sorted(text for child, item in value.items() if child != "@context"
                                    for text in _hashed_extension(child, item, prefixes)))
    elif value is not None:
        text = _scalar(value, prefixes)
        yield f"{name}={text}" if text else name


def _scalar(value: Any, prefixes: Mapping[str, str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return _canonical(str(value), prefixes)


def _vocabulary(value: str, kind: str, prefixes: Mapping[str, str]) -> str:
    value = value.strip()
    if ":" not in value:
        return CBV + kind + value
    return _canonical(value, prefixes)


def _canonical(value: str, prefixes: Mapping[str, str]) -> str:
    """A value as the event hash writes it: EPCs as canonical Digital Links, CURIEs expanded."""
    value = value.strip()
    lowered = value[:17].lower()
    if lowered.startswith(("urn:epc:id:sgtin:", "urn:epc:id:sscc:", "http://", "https://")):
        try:
            code = parse(value).code
        except ParseError:
            pass
        else:
            return render(code, Form.DIGITAL_LINK, host=CANONICAL_HOST)
    if lowered.startswith(("urn:epc:id:sgln:", "urn:epc:id:pgln:")):
        match = GLN_URI.fullmatch(value)
        if match is not None:
            try:
                gln = gln_from(match[2], match[3])
            except ParseError:
                return value
            if match[1].lower() == "pgln":
                return f"{CANONICAL_HOST}/417/{gln}"
            extension = unquote(match[4] or "0")
            return f"{CANONICAL_HOST}/414/{gln}" + (
                f"/254/{quote(extension, safe='')}" if extension != "0" else "")
    if lowered.startswith("urn:epcglobal:cbv:"):
        vocabulary, _, term = value[len("urn:epcglobal:cbv:"):].partition(":")
        if vocabulary.lower() in CBV_URNS:
            return CBV + CBV_URNS[vocabulary.lower()] + term
    return expand(value, prefixes)
