"""Every lifecycle step from the command line, in bulk: commission, pack / unpack, ship, receive,
dispense (and the other decommission reasons), undo, destroy.

Codes come from the arguments, then --file (one a line as a scanner writes them; '-' is standard
input). They go to the server in messages of --batch-size codes over the step's own batch RPC,
each message applied best effort (the codes that pass are recorded, the others reported) unless
--all-or-nothing, and each with its own event id so a message sent twice is recorded once. Every
input line gets one output row in input order: recorded, or refused with the server's reason and
the line it came from.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pharmatrace_cli import lifecycle_reads
from pharmatrace_cli.command import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Progress,
    Rows,
    add_command,
    add_output_options,
    endpoints,
    input_lines,
)

DEFAULT_BATCH = 5_000
"""Codes per message: the progress bar moves every message, and a message's overhead stays
small beside its codes' work."""
MAX_BATCH = 100_000
HEADERS = ("LINE", "INPUT", "OUTCOME", "REASON")
DECOMMISSION = ("dispensed", "exported", "sample", "free-sample", "checked-out", "locked")


@dataclass(frozen=True, slots=True)
class Line:
    """One code of the input and where it came from: ``arg N`` or the line number."""

    where: str
    text: str


def register(commands: Any) -> None:
    """Adds the lifecycle steps, and the reads of what they recorded."""
    step = _step(commands, "commission", "Commission issued codes: the packs exist now.",
                 _commission, "pharmatrace commission --tenant acme --file printed.txt "
                 "--party plant-1")
    step.add_argument("--lot", help="the batch, when the pool was not issued for one")
    step.add_argument("--level", choices=("unit", "bundle", "case", "pallet"),
                      help="packaging level (default: the pool's)")
    for name, text, run in (("pack", "Aggregate codes into a container (case, pallet).", _pack),
                            ("unpack", "Take codes out of a container (all of them when no "
                             "code is given).", _unpack)):
        sub = _step(commands, name, text, run,
                    f"pharmatrace {name} --tenant acme --parent CASE_CODE --file packs.txt")
        sub.add_argument("--parent", required=True, help="the container's code")
        if name == "pack":
            sub.add_argument("--partial", action="store_true",
                             help="a container short of its pack ratio on purpose")
    ship = _step(commands, "ship", "Ship packs or containers to a party.", _ship,
                 "pharmatrace ship --tenant acme --party dc-1 --to pharmacy-7 --file - "
                 "< scanned.txt")
    ship.add_argument("--to", required=True, dest="destination",
                      help="party id of the addressee")
    receive = _step(commands, "receive", "Receive packs or containers at --party.", _receive,
                    "pharmatrace receive --tenant acme --party pharmacy-7 --bill DA-2026-0042 "
                    "--file delivery.txt")
    for sub in (ship, receive):
        sub.add_argument("--bill", metavar="NUMBER",
                         help="the business document it moves under (bill, despatch advice)")
        sub.add_argument("--bill-type", default="desadv",
                         help="its type: a CBV business transaction type (po, desadv, inv, ...) "
                         "or your own, such as crkd for 出入库单 (default desadv)")
        sub.add_argument("--counterparty", default="", metavar="PARTY",
                         help="party id of the document's other side")
    dispense = _step(commands, "dispense", "Dispense packs to patients (decommission).",
                     _decommission, "pharmatrace dispense --tenant acme --party pharmacy-7 CODE")
    dispense.set_defaults(status="dispensed")
    dispense.add_argument("--reason", default="")
    decommission = _step(
        commands, "decommission", "Decommission packs for another reason: exported, sample, "
        "free-sample, checked-out, locked.", _decommission,
        "pharmatrace decommission --as exported --tenant acme --file export.txt")
    decommission.add_argument("--as", dest="status", required=True, choices=DECOMMISSION)
    decommission.add_argument("--reason", default="")
    _step(commands, "undo", "Undo the decommissioning of packs by --party.", _undo,
          "pharmatrace undo --tenant acme --party pharmacy-7 CODE")
    destroy = _step(commands, "destroy", "Destroy packs, or report them stolen.", _destroy,
                    "pharmatrace destroy --tenant acme --reason 'water damage' --file bad.txt")
    destroy.add_argument("--stolen", action="store_true", help="report stolen, not destroyed")
    destroy.add_argument("--reason", default="")
    lifecycle_reads.register(commands)


def _step(commands: Any, name: str, text: str, run: Callable[[argparse.Namespace], int],
          example: str) -> argparse.ArgumentParser:
    """A bulk step: codes from arguments, --file or stdin; batches; rows; summary."""
    sub = add_command(commands, name, text + " Codes come from the arguments, then --file (one "
                      "a line; '-' is standard input).", run, example=example)
    sub.add_argument("codes", nargs="*")
    sub.add_argument("--file", help="file with one code per line ('-' for stdin)")
    sub.add_argument("--party", help="the party where it happens")
    sub.add_argument("--when", help="event time, ISO date-time (default now)")
    sub.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                     help=f"codes per message to the server (default {DEFAULT_BATCH:,})")
    sub.add_argument("--all-or-nothing", action="store_true",
                     help="a message with a refused code records none of its codes")
    sub.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    add_output_options(sub)
    return sub


def read_lines(codes: list[str], file: str | None) -> Iterator[Line]:
    """The codes of the arguments, then those of the file, each with where it came from; blank
    lines are skipped but counted, so line numbers are the file's."""
    for n, code in enumerate(codes, 1):
        yield Line(f"arg {n}", code)
    if file:
        for n, text in input_lines(file):
            if text.strip():
                yield Line(str(n), text)


def _context(args: argparse.Namespace, event_id: str) -> Any:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    from pharmatrace_cli.command import epoch_ms

    return pb.EventContext(party_id=args.party or "", when_ms=epoch_ms(args.when),
                           event_id=event_id, best_effort=not args.all_or_nothing)


def _commission(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import lifecycle_pb2 as pb

    level = cpb.PackagingLevel.Value(f"PACKAGING_LEVEL_{(args.level or 'unspecified').upper()}")
    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Commission(pb.CommissionRequest(
        tenant=args.tenant, context=ctx, codes=codes, lot=args.lot or "", level=level)))


def _pack(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Aggregate(pb.AggregateRequest(
        tenant=args.tenant, context=ctx, parent=args.parent, children=codes,
        partial=args.partial)), one_message=True)


def _unpack(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Disaggregate(pb.AggregateRequest(
        tenant=args.tenant, context=ctx, parent=args.parent, children=codes)),
        one_message=True, allow_empty=True)


def _ship(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Ship(pb.ShipRequest(
        tenant=args.tenant, context=ctx, codes=codes, destination=args.destination,
        documents=_documents(args))))


def _receive(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Receive(pb.ReceiveRequest(
        tenant=args.tenant, context=ctx, codes=codes, documents=_documents(args))))


def _documents(args: argparse.Namespace) -> list[Any]:
    """The business document of --bill, if one was given (the server checks its type and
    number)."""
    from pharmatrace.v1 import common_pb2 as cpb

    if not args.bill:
        return []
    return [cpb.BusinessDocument(type=args.bill_type, id=args.bill,
                                 counterparty=args.counterparty)]


def _decommission(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import lifecycle_pb2 as pb

    target = cpb.CodeStatus.Value("CODE_STATUS_" + args.status.upper().replace("-", "_"))
    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Decommission(pb.DecommissionRequest(
        tenant=args.tenant, context=ctx, codes=codes, target=target, reason=args.reason)))


def _undo(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Undo(pb.UndoRequest(
        tenant=args.tenant, context=ctx, codes=codes)))


def _destroy(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    stub = endpoints(args).lifecycle()
    return _run(args, lambda codes, ctx: stub.Destroy(pb.DestroyRequest(
        tenant=args.tenant, context=ctx, codes=codes, stolen=args.stolen, reason=args.reason)))


def _run(args: argparse.Namespace, send: Callable[[list[str], Any], Any], *,
         one_message: bool = False, allow_empty: bool = False) -> int:
    """Sends the codes in messages, writes one row per input line in order, then the summary;
    exits 1 when any code was refused."""
    lines = list(read_lines(args.codes, args.file))
    if not lines and not allow_empty:
        raise CliError("no codes given (arguments or --file)")
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise CliError(f"--batch-size must be between 1 and {MAX_BATCH:,}")
    size = MAX_BATCH if one_message else args.batch_size
    if one_message and len(lines) > MAX_BATCH:
        raise CliError(f"at most {MAX_BATCH:,} codes in one container")
    # Each message's event id: an EPCIS eventID, so a URI (exports carry it to partners).
    run = uuid.uuid4()
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    changed = duplicates = 0
    progress = Progress(len(lines), enabled=sys.stderr.isatty() and not args.quiet)
    rows = Rows(args.output, HEADERS, widths=(6, max((len(x.text) for x in lines), default=4),
                                              9, 0))
    try:
        chunks = [lines[i:i + size] for i in range(0, len(lines), size)] or [[]]
        done = 0
        for n, chunk in enumerate(chunks):
            event_id = f"urn:uuid:{uuid.uuid5(run, str(n))}"
            response = send([x.text for x in chunk], _context(args, event_id))
            changed += response.changed
            duplicates += response.duplicates
            refused = _refusals(response.failures)
            for x in chunk:
                reason = refused.get(x.text, "")
                if refused and not reason:
                    reason = refused.get(_canonical(x.text), "")
                outcome = "refused" if reason or not response.applied else "recorded"
                if outcome == "refused" and not reason:
                    reason = "not applied: another code of its message was refused"
                outcomes[outcome] += 1
                doc = {"line": x.where, "input": x.text, "outcome": outcome}
                if reason:
                    doc["reason"] = reason
                rows.write(doc, (x.where, x.text, outcome, reason))
            for note in response.notes:
                print(f"note: {note}", file=sys.stderr)
            done += len(chunk)
            progress.update(done)
        rows.close()
    finally:
        progress.done()
    if not args.quiet:
        seconds = time.monotonic() - started
        total = sum(outcomes.values())
        print(f"{total:,} codes in {seconds:,.1f} s ({total / max(seconds, 1e-9):,.0f}/s): "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))
              + f"; {changed:,} codes changed (container contents included)"
              + (f", {duplicates:,} messages already recorded" if duplicates else ""),
              file=sys.stderr)
    return EXIT_ERROR if outcomes["refused"] else EXIT_OK


def _refusals(failures: Any) -> dict[str, str]:
    """The reason of each refused code, by the text the server names it with (the input for a
    code that does not parse, the canonical text otherwise)."""
    out: dict[str, str] = {}
    for failure in failures:
        out.setdefault(failure.code, failure.reason)
    return out


def _canonical(text: str) -> str:
    from tracecore.codes import parse
    from tracecore.errors import ParseError

    try:
        return parse(text).code.text()
    except ParseError:
        return text
