"""`pharmatrace verify`: genuine or not, status, alerts, scan count, for one code or a million.

Codes go to the server in batches over one VerifyStream call: the stream sends the next batches
while the answers of the first come back, so the command runs near the server's batch rate
instead of one round trip per code. Answers come back in the order of the batches, and columns
within a batch answer codes in their order, so the output keeps the input's order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pharmatrace_cli.command import (
    EXIT_ALERTS,
    EXIT_NOT_GENUINE,
    EXIT_OK,
    CliError,
    Progress,
    Rows,
    add_command,
    add_output_options,
    endpoints,
    read_inputs,
)

DEFAULT_BATCH = 10_000
"""Codes per message: large enough that a message's overhead is small beside its codes, small
enough that the progress bar moves and the server verifies the next batch meanwhile."""
REASONS_AT_MOST = 100
"""Not-genuine codes whose reason is asked for one by one (the batch answer carries none); past
that, a run is a bulk check and its summary says enough."""
HEADERS = ("VERDICT", "CODE", "STATUS", "SCANS", "PRODUCT", "LOT", "EXPIRES", "ALERTS")


def register(commands: Any) -> None:
    """Adds verify to the command group."""
    verify = add_command(
        commands, "verify", "Verify codes: genuine, status, alerts. Codes come from the "
        "arguments, then --file (one a line; '-' is standard input).", _verify,
        example="pharmatrace verify --tenant acme --file received.txt --json > answers.jsonl")
    verify.add_argument("codes", nargs="*")
    verify.add_argument("--file", help="file with one code per line ('-' for stdin)")
    add_output_options(verify)
    verify.add_argument("--region", help="scanner's GB/T 2260 region")
    verify.add_argument("--party", help="scanner's party id")
    verify.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"codes per message to the server (default {DEFAULT_BATCH:,})")
    verify.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar and no summary")
    verify.add_argument("--nats", default="", metavar="URL",
                        help="find the tenant of the codes and a node serving it in the "
                        "replication directory on this NATS server (instead of --tenant and "
                        "--verify-addr)")


def _verify(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import verification_pb2 as pb

    codes = list(read_inputs(args.codes, args.file))
    if not codes:
        raise CliError("no codes given (arguments or --file)")
    if not 1 <= args.batch_size <= 100_000:
        raise CliError("--batch-size must be between 1 and 100,000")
    if args.nats:
        from pharmatrace_cli.replication import locate

        args.tenant, args.verify_addr = locate(args.nats, codes)
    stub = endpoints(args).verification()
    context = pb.ScanContext(party_id=args.party or "", region=args.region or "")
    batches = [codes[i:i + args.batch_size] for i in range(0, len(codes), args.batch_size)]
    requests = (pb.VerifyBatchRequest(tenant=args.tenant, codes=b, context=context)
                for b in batches)
    started = time.monotonic()
    tally = Tally()
    progress = Progress(len(codes), enabled=sys.stderr.isatty() and not args.quiet)
    reasons = _Reasons(stub, args.tenant, context)
    rows = Rows(args.output, HEADERS,
                widths=(14, max(len(c) for c in codes), 12, 5, 24, 10, 10, 0))
    try:
        done = 0
        for batch, answer in zip(batches, stub.VerifyStream(requests), strict=True):
            _write(rows, batch, answer, reasons)
            tally.add(answer)
            done += len(batch)
            progress.update(done)
        rows.close()
    finally:
        progress.done()
    if not args.quiet:
        print(tally.summary(time.monotonic() - started), file=sys.stderr)
    return tally.exit_code()


def _write(rows: Rows, batch: Sequence[str], answer: Any, reasons: _Reasons) -> None:
    """One row per code; what codes share (verdict, status, alerts, product, lot) is made once
    per batch, so a million rows cost little more than the text of their codes."""
    shared: dict[tuple[int, int, int, int, int], tuple[dict[str, Any], list[str], str]] = {}
    products, lots = answer.products, answer.batches
    as_json = rows.format == "json"
    lines: list[str] = []
    repaired = dict(zip(answer.repaired_rows, zip(answer.repaired_codes, answer.repairs,
                                                  strict=True), strict=True))
    hints = dict(zip(answer.hint_rows, answer.hints, strict=True))
    for row, (code, verdict, status, mask, scans, first, pi, bi) in enumerate(zip(
            batch, answer.verdicts, answer.statuses, answer.alert_masks, answer.scan_counts,
            answer.first_verified_at_ms, answer.product_indexes, answer.batch_indexes,
            strict=True)):
        key = (verdict, status, mask, pi, bi)
        common = shared.get(key)
        if common is None:
            common = shared[key] = _common(verdict, status, mask,
                                           products[pi] if pi >= 0 else None,
                                           lots[bi] if bi >= 0 else None)
        doc, cells, tail = common
        reason = reasons.get(code) if verdict != _GENUINE else ""
        fixed, note = repaired.get(row, ("", ""))
        hint = hints.get(row, "")
        if as_json and not (reason or note or hint):
            counts = (f'"scan_count": {scans}, "first_verified_at_ms": {first}, ' if scans
                      else "")
            lines.append(f'{{"input": {_dumps(code)}, {counts}{tail}\n')
            continue
        doc = {"input": code, **doc}
        if scans:
            doc["scan_count"], doc["first_verified_at_ms"] = scans, first
        alerts = cells[5]
        if reason:
            doc["reason"] = reason
            alerts = f"{alerts}  ({reason})".lstrip()
        if note:
            doc["repaired"] = {"code": fixed, "what": note}
            alerts = f"{alerts}  (repaired as {fixed}: {note})".lstrip()
        if hint:
            doc["hint"] = hint
            alerts = f"{alerts}  (hint: {hint})".lstrip()
        if lines:
            rows.json_text("".join(lines))
            lines.clear()
        rows.write(doc, (cells[0], code, cells[1], scans, cells[2], cells[3], cells[4], alerts))
    if lines:
        rows.json_text("".join(lines))


def _common(verdict: Any, status: Any, mask: int, product: Any,
            lot: Any) -> tuple[dict[str, Any], list[str], str]:
    """The JSON fields and table cells a verdict, status, alert set, product and lot make."""
    from google.protobuf import json_format
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import verification_pb2 as pb

    alerts = [pb.AlertKind.Name(k) for k in pb.AlertKind.values() if k and mask & (1 << k)]
    doc: dict[str, Any] = {"verdict": pb.Verdict.Name(verdict)}
    if status:
        doc["status"] = cpb.CodeStatus.Name(status)
    if alerts:
        doc["alerts"] = alerts
    if product is not None:
        doc["product"] = json_format.MessageToDict(product, preserving_proto_field_name=True)
    if lot is not None:
        doc["batch"] = json_format.MessageToDict(lot, preserving_proto_field_name=True)
    cells = [doc["verdict"].removeprefix("VERDICT_"),
             doc.get("status", "-").removeprefix("CODE_STATUS_"),
             product.name if product is not None else "-",
             lot.lot if lot is not None else "-",
             lot.expires_on if lot is not None else "-",
             ", ".join(a.removeprefix("ALERT_KIND_").lower() for a in alerts)]
    # The JSON object but its first key(s), so a row is one string join away.
    return doc, cells, json.dumps(doc, ensure_ascii=False)[1:]


_GENUINE = 1
_dumps = json.JSONEncoder(ensure_ascii=False).encode


class _Reasons:
    """Why a code is not genuine, asked of the unary Verify for the first few such codes."""

    def __init__(self, stub: Any, tenant: str, context: Any) -> None:
        self._stub, self._tenant, self._context = stub, tenant, context
        self._left = REASONS_AT_MOST

    def get(self, code: str) -> str:
        if self._left <= 0:
            return ""
        from pharmatrace.v1 import verification_pb2 as pb

        self._left -= 1
        answer = self._stub.Verify(pb.VerifyRequest(tenant=self._tenant, code=code,
                                                    context=self._context))
        reason: str = answer.reason
        return reason


class Tally:
    """Counts by verdict, status and alert over every answer of a run."""

    def __init__(self) -> None:
        self.verdicts: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self.masks: Counter[int] = Counter()
        self.repaired = 0

    def add(self, answer: Any) -> None:
        self.repaired += len(answer.repaired_rows)
        self.verdicts.update(answer.verdicts)
        self.statuses.update(answer.statuses)
        self.masks.update(answer.alert_masks)

    def alerts(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        for mask, n in self.masks.items():
            for kind in _bits(mask):
                counts[kind] += n
        return counts

    def exit_code(self) -> int:
        """3 when any code is not genuine, else 4 when any raised an alert, else 0."""
        if any(n for v, n in self.verdicts.items() if v != _GENUINE):
            return EXIT_NOT_GENUINE
        if any(n for m, n in self.masks.items() if m):
            return EXIT_ALERTS
        return EXIT_OK

    def summary(self, seconds: float) -> str:
        from pharmatrace.v1 import common_pb2 as cpb
        from pharmatrace.v1 import verification_pb2 as pb

        total = sum(self.verdicts.values())
        lines = [f"{total:,} codes in {seconds:,.1f} s ({total / max(seconds, 1e-9):,.0f}/s)"]
        lines.append("verdict: " + _counts(self.verdicts, lambda v: pb.Verdict.Name(v)
                                           .removeprefix("VERDICT_")))
        statuses = Counter({s: n for s, n in self.statuses.items() if s})
        if statuses:
            lines.append("status:  " + _counts(statuses, lambda s: cpb.CodeStatus.Name(s)
                                               .removeprefix("CODE_STATUS_")))
        alerts = self.alerts()
        lines.append("alerts:  " + (_counts(alerts, lambda k: pb.AlertKind.Name(k)
                                            .removeprefix("ALERT_KIND_").lower())
                                    if alerts else "none"))
        if self.repaired:
            lines.append(f"repaired: {self.repaired:,} scrambled scans read as their codes")
        return "\n".join(lines)


def _counts(counts: Counter[int], name: Any) -> str:
    return ", ".join(f"{name(k)} {n:,}" for k, n in counts.most_common())


def _bits(mask: int) -> Iterator[int]:
    kind = 0
    while mask:
        if mask & 1:
            yield kind
        mask >>= 1
        kind += 1

