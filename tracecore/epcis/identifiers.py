"""Identifiers in EPCIS documents: packs as SGTIN EPC URIs, GS1 Digital Links or NMPA URIs,
parties as SGLN EPC URIs, and events by a URI even where their writer gave another id."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote, unquote

from tracecore import gs1
from tracecore.codes import Code, Scan, Scheme, parse, parse_many
from tracecore.epcis.vocabulary import NMPA_URI_PREFIX
from tracecore.errors import InvalidArgument, ParseError

_NMPA_URI = re.compile(re.escape(NMPA_URI_PREFIX) + r"([0-9]{7})([0-9]{13})")

# RFC 3986: a scheme, then only URI characters. Runs of plain characters are taken whole
# (possessively): a URI is checked once per EPC, so this is on the import's hot path.
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*+:"
                 r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]++|%[0-9A-Fa-f]{2})*+")

#: The namespace of the name-based UUIDs (RFC 4122 version 5) ``event_uri`` gives an event whose
#: id is not a URI. Fixed forever: the UUIDs partners hold were derived from it.
_EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:pharmatrace:epcis:event-id")

GLN_URI = re.compile(r"urn:epc:id:(sgln|pgln):([0-9]{6,12})\.([0-9]{0,6})(?:\.(\S+))?",
                     re.IGNORECASE)


def event_uri(tenant: str, event_id: str) -> str:
    """An event's eventID as EPCIS documents carry it, which must be a URI: ``event_id``
    itself when it is one (``urn:uuid:...``, ``ni:///sha-256;...``); else (an id a gRPC client
    gave, such as ``line7-000123``) a UUID URN named by the tenant and that id, the form CBV 2.0
    gives event ids beside the event hash: the same every time the tenant's event is written,
    on every node holding the tenant, and another tenant's id of the same text names another
    UUID."""
    if URI.fullmatch(event_id):
        return event_id
    name = tenant + "\n" + event_id  # a tenant's name holds no line break
    return f"urn:uuid:{uuid.uuid5(_EVENT_ID_NAMESPACE, name)}"


def may_be_event_uri(event_id: str) -> bool:
    """Whether ``event_id`` has the form ``event_uri`` gives an id that is not a URI (a UUID
    URN of version 5), so that it may name an event recorded under another id."""
    if not event_id.startswith("urn:uuid:"):
        return False
    try:
        return uuid.UUID(event_id[9:]).version == 5
    except ValueError:
        return False


def sgln_uri(gln: str, company_prefix_length: int) -> str:
    """The SGLN EPC URI of a party's GLN-13 (check digit validated), without extension."""
    if not 6 <= company_prefix_length <= 12:
        raise InvalidArgument("must be 6 to 12", field="company_prefix_length")
    if len(gln) != 13 or not gln.isdigit() or not gln.isascii():
        raise InvalidArgument("must be 13 digits", field="gln")
    if gs1.check_digit(gln[:12]) != int(gln[12]):
        raise InvalidArgument(f"GLN check digit is {gln[12]}, expected "
                              f"{gs1.check_digit(gln[:12])}", field="gln")
    return f"urn:epc:id:sgln:{gln[:company_prefix_length]}.{gln[company_prefix_length:12]}.0"


def gln_of(uri: str) -> str:
    """The GLN-13 of an SGLN EPC URI; an extension (a place within the site) is dropped."""
    match = GLN_URI.fullmatch(uri)
    if match is None or match[1].lower() != "sgln" or match[4] is None:
        raise ParseError("not an SGLN EPC URI: expected urn:epc:id:sgln:{prefix}.{ref}.{ext}")
    return gln_from(match[2], match[3])


def codes_of_uris(uris: list[str], path: str) -> tuple[Code, ...]:
    # The packs of one event mostly differ only in their serials: read together, each URI after
    # the first of its product is not read anew (``parse_many``). What that does not read as a
    # GS1 URI, ``code_of_uri`` reads or refuses on its own.
    codes = tuple(
        scan.code if type(scan) is Scan and _gs1_uri(uri) else code_of_uri(uri, f"{path}[{i}]")
        for i, (uri, scan) in enumerate(zip(uris, parse_many(uris), strict=True)))
    if len(set(codes)) != len(codes):
        raise InvalidArgument("lists a code twice", field=path)
    return codes


def code_of_uri(uri: str, path: str) -> Code:
    """The code of an SGTIN or SSCC EPC URI, a GS1 Digital Link URI (``/01/…/21/…`` or
    ``/00/``) or an NMPA URI."""
    nmpa = _NMPA_URI.fullmatch(uri)
    if nmpa is not None:
        return Code(Scheme.NMPA, nmpa[1], nmpa[2])
    if not _gs1_uri(uri):
        raise InvalidArgument("must be an SGTIN or SSCC EPC URI, a GS1 Digital Link URI or "
                              f"{NMPA_URI_PREFIX} and 20 digits", field=path)
    try:
        return parse(uri).code
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field=path) from None


def _gs1_uri(uri: str) -> bool:
    """Whether ``code_of_uri`` reads ``uri`` as a GS1 code (an EPC URI or a Digital Link)."""
    return uri[:4].lower() in ("urn:", "http") and _NMPA_URI.fullmatch(uri) is None


def gln_from(prefix: str, reference: str) -> str:
    if len(prefix) + len(reference) != 12:
        raise ParseError("GLN EPC URI: company prefix and location reference must have 12 digits")
    body = prefix + reference
    return body + str(gs1.check_digit(body))


#: A business document number that is not a URI travels as this URN (EPCIS wants a URI).
TRANSACTION_URN = "urn:pharmatrace:bt:"
_CBV_TRANSACTION = re.compile(r"urn:epcglobal:cbv:bt:[0-9]{13}:(.+)")


def transaction_uri(number: str) -> str:
    """A business document's number as an EPCIS bizTransaction URI: as it is when a URI."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", number):
        return number
    return TRANSACTION_URN + quote(number, safe="-._~")


def transaction_number(uri: str) -> str:
    """The document number in a bizTransaction URI: CBV's ``urn:epcglobal:cbv:bt:{GLN}:{id}``
    and ours give the id, any other URI is the number."""
    if uri.startswith(TRANSACTION_URN):
        return unquote(uri.removeprefix(TRANSACTION_URN))
    match = _CBV_TRANSACTION.fullmatch(uri)
    return match[1] if match is not None else uri
