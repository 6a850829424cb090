"""GS1 EPCIS 2.0 JSON-LD: ledger events out as an EPCISDocument, a partner's one in as events.

``vocabulary`` holds the event table and CBV terms, ``identifiers`` the URIs of packs and
parties, ``writer`` and ``reader`` the two directions, ``xml_reader`` EPCIS 1.2 and 2.0 XML as
JSON-LD, ``query`` the standard event query, ``schema`` the validation of what comes in and
``event_hash`` the CBV 2.0 event hash ID both directions give an event without an id.
"""

from tracecore.epcis.identifiers import gln_of, sgln_uri
from tracecore.epcis.query import PARAMETERS, Query, parse_query
from tracecore.epcis.reader import Refusal, import_document, read_document
from tracecore.epcis.schema import schema_path
from tracecore.epcis.vocabulary import (
    CONTEXT_URL,
    EXTENSION_NAMESPACE,
    EXTENSION_PREFIX,
    NMPA_URI_PREFIX,
    IdForm,
    why_of,
)
from tracecore.epcis.writer import export_document
from tracecore.epcis.xml_reader import document_of_xml

__all__ = [
    "CONTEXT_URL",
    "EXTENSION_NAMESPACE",
    "EXTENSION_PREFIX",
    "NMPA_URI_PREFIX",
    "PARAMETERS",
    "IdForm",
    "Query",
    "Refusal",
    "document_of_xml",
    "export_document",
    "gln_of",
    "import_document",
    "parse_query",
    "read_document",
    "schema_path",
    "sgln_uri",
    "why_of",
]
