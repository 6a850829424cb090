"""What the lifecycle steps recorded: one code's trace, the event log, the parties and the
batches, as a table, JSON lines or CSV."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from pharmatrace_cli.command import (
    EXIT_OK,
    Rows,
    add_command,
    add_output_options,
    day_or_ms,
    endpoints,
    message_doc,
    subgroup,
)

EVENT_HEADERS = ("SEQ", "WHEN", "KIND", "PARTY", "TO", "PARENT", "CODES")


def register(commands: Any) -> None:
    """Adds trace, events, party list and batch list."""
    trace = add_command(commands, "trace", "One code's trace: status, holder, containers, "
                        "contents and its history.", _trace,
                        example="pharmatrace trace --tenant acme '(01)09501101530003(21)X'")
    trace.add_argument("code")
    add_output_options(trace)
    events = add_command(commands, "events", "The event log, newest filters first: by product, "
                         "lot, party and time.", _events,
                         example="pharmatrace events --tenant acme --party dc-1 --since "
                         "2026-12-01 --csv")
    events.add_argument("--product")
    events.add_argument("--lot")
    events.add_argument("--party")
    events.add_argument("--since", help="YYYY-MM-DD (from midnight in the tenant's time zone) "
                        "or ISO date-time, UTC unless it says otherwise (inclusive)")
    events.add_argument("--until", help="YYYY-MM-DD (a local day of the tenant, exclusive) or "
                        "ISO date-time (exclusive)")
    events.add_argument("--limit", type=int, default=0, help="at most this many events")
    add_output_options(events)
    plist = add_command(subgroup(commands, "party", "Add parties."), "list", "List parties.",
                        _party_list, example="pharmatrace party list --tenant acme --json")
    add_output_options(plist)
    blist = add_command(subgroup(commands, "batch", "Add batches."), "list", "List batches.",
                        _batch_list, example="pharmatrace batch list --tenant acme "
                        "--product 09501101530003")
    blist.add_argument("--product")
    add_output_options(blist)


def _trace(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import trace_pb2 as pb

    response = endpoints(args).trace().TraceCode(pb.TraceCodeRequest(tenant=args.tenant,
                                                                      code=args.code))
    with Rows(args.output, ("FIELD", "VALUE")) as rows:
        if rows.format == "json":
            rows.write(message_doc(response), ())
            return EXIT_OK
        for name, value in (
                ("code", response.code),
                ("status", cpb.CodeStatus.Name(response.status).removeprefix("CODE_STATUS_")),
                ("product", f"{response.product.gtin or response.product.nmpa_id} "
                            f"{response.product.name}".strip()),
                ("lot", f"{response.batch.lot} (expires {response.batch.expires_on})"),
                ("holder", response.holder + (" (in transit)" if response.in_transit else "")),
                ("in", " < ".join(response.parents) or "-"),
                ("contents", f"{response.child_count:,}" if response.child_count else "-"),
                ("replaced by", response.replaced_by or "-")):
            rows.write({}, (name, value))
        for event in response.history:
            rows.write({}, (_when(event.when_ms), _event_text(event)))
    return EXIT_OK


def _events(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    stub = endpoints(args).trace()
    (since, from_ms), (until, to_ms) = day_or_ms(args.since), day_or_ms(args.until)
    request = pb.ListEventsRequest(tenant=args.tenant, product=args.product or "",
                                   lot=args.lot or "", party_id=args.party or "",
                                   from_ms=from_ms, to_ms=to_ms, since=since, until=until,
                                   page_size=1000)
    with Rows(args.output, EVENT_HEADERS, widths=(8, 20, 12, 16, 16, 0, 0)
              if args.output == "table" else None) as rows:
        for n, event in enumerate(_pages(lambda r: stub.ListEvents(r), request, "events")):
            if args.limit and n >= args.limit:
                break
            rows.write(message_doc(event), (
                event.seq, _when(event.when_ms), _kind(event.kind), event.party_id or "-",
                event.destination or "-", event.parent or "-", f"{event.code_count:,}"))
    return EXIT_OK


def _party_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    stub = endpoints(args).admin()
    with Rows(args.output, ("PARTY", "NAME", "KIND", "GLN", "REGION")) as rows:
        for party in _pages(lambda r: stub.ListParties(r),
                            pb.ListPartiesRequest(tenant=args.tenant, page_size=1000),
                            "parties"):
            rows.write(message_doc(party), (
                party.party_id, party.name,
                cpb.PartyKind.Name(party.kind).removeprefix("PARTY_KIND_").lower(),
                party.gln or "-", party.region or "-"))
    return EXIT_OK


def _batch_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    stub = endpoints(args).admin()
    with Rows(args.output, ("PRODUCT", "LOT", "MANUFACTURED", "EXPIRES", "REGIONS")) as rows:
        for batch in _pages(lambda r: stub.ListBatches(r),
                            pb.ListBatchesRequest(tenant=args.tenant,
                                                  product=args.product or "", page_size=1000),
                            "batches"):
            rows.write(message_doc(batch), (
                batch.product, batch.lot, batch.manufactured_on or "-", batch.expires_on,
                " ".join(batch.authorised_regions) or "anywhere"))
    return EXIT_OK


def _pages(call: Callable[[Any], Any], request: Any, field: str) -> Iterator[Any]:
    """Every item of a paged list, page after page."""
    while True:
        response = call(request)
        yield from getattr(response, field)
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _kind(kind: int) -> str:
    from pharmatrace.v1 import lifecycle_pb2 as lpb

    return lpb.EventKind.Name(kind).removeprefix("EVENT_KIND_").lower()  # type: ignore[arg-type]


def _event_text(event: Any) -> str:
    parts = [_kind(event.kind)]
    if event.party_id:
        parts.append(f"at {event.party_id}")
    if event.destination:
        parts.append(f"to {event.destination}")
    if event.parent:
        parts.append(f"in {event.parent}")
    parts.append(f"({event.code_count:,} codes)")
    return " ".join(parts)
