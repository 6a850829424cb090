"""GS1 EPCIS 2.0 exchange commands: export events for a partner, import a partner's document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import (
    EXIT_ERROR,
    EXIT_OK,
    Output,
    add_command,
    day_or_ms,
    endpoints,
)


def register(commands: Any) -> None:
    """Adds epcis export and import to the command group."""
    epcis = commands.add_parser("epcis", help="GS1 EPCIS 2.0 exchange.").add_subparsers(
        metavar="ACTION")
    export = add_command(epcis, "export", "Export events as an EPCIS 2.0 JSON-LD document.",
                         _epcis_export)
    export.add_argument("--product")
    export.add_argument("--lot")
    export.add_argument("--party")
    export.add_argument("--since", help="YYYY-MM-DD (from midnight in the tenant's time zone) "
                        "or ISO date-time, UTC unless it says otherwise (inclusive)")
    export.add_argument("--until", help="YYYY-MM-DD (a local day of the tenant, exclusive) or "
                        "ISO date-time (exclusive)")
    export.add_argument("--form", choices=("epc", "digital-link"), default="epc",
                        help="EPCs as SGTIN URNs or GS1 Digital Link URIs")
    export.add_argument("--company-prefix-length", type=int, default=7)
    export.add_argument("--max-events", type=int)
    export.add_argument("--out", help="file to write (default stdout)")
    eimport = add_command(epcis, "import",
                          "Apply a partner's EPCIS document (2.0 JSON-LD, 1.2 or 2.0 XML).",
                          _epcis_import)
    eimport.add_argument("file", help="JSON-LD or XML file ('-' for stdin)")
    eimport.add_argument("--best-effort", action="store_true",
                         help="record the events that pass and list the refused ones with "
                              "their reasons (default: all or nothing)")


def _epcis_export(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    (since, from_ms), (until, to_ms) = day_or_ms(args.since), day_or_ms(args.until)
    response = endpoints(args).trace().ExportEpcis(pb.ExportEpcisRequest(
        tenant=args.tenant, product=args.product or "", lot=args.lot or "",
        party_id=args.party or "", from_ms=from_ms, to_ms=to_ms, since=since, until=until,
        epc_form=(pb.EPC_FORM_DIGITAL_LINK if args.form == "digital-link"
                  else pb.EPC_FORM_EPC_URI),
        company_prefix_length=args.company_prefix_length, max_events=args.max_events or 0))
    with Output(args.out) as out:
        out.write(json.dumps(json.loads(response.document), indent=2, ensure_ascii=False) + "\n")
    print(f"{response.event_count:,} events exported"
          + (" (more matched: narrow the filter)" if response.truncated else ""),
          file=sys.stderr)
    return EXIT_OK


def _epcis_import(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    document = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    response = endpoints(args).lifecycle().ImportEpcis(pb.ImportEpcisRequest(
        tenant=args.tenant, document=document, best_effort=args.best_effort))
    print(f"{response.events:,} events: {response.recorded:,} recorded, "
          f"{response.duplicates:,} already recorded, {response.changed:,} codes changed")
    for note in response.notes:
        print(f"note: {note}")
    for failure in response.failures:
        where = failure.field or failure.code
        print(f"not applied: event {failure.event_index}: {where}: {failure.reason}",
              file=sys.stderr)
    return EXIT_OK if not response.failures else EXIT_ERROR
