"""Oversight commands: recall, withdraw, locate a batch, batches using a material lot, alerts and
the regional report. ``register`` adds them to the `pharmatrace` parser."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import EXIT_OK, CliError, add_command, endpoints, replaceable

_ALERT_KINDS = {"diversion": 10, "clone": 11, "access": 12, "dispensed-elsewhere": 13}
_LEVELS = ("province", "city", "county")


def register(commands: Any) -> None:
    """Adds recall, withdraw, locate, material, alerts and report to the command group."""
    recall = commands.add_parser(
        "recall", help="Recall a batch, or every batch that used a material lot.",
    ).add_subparsers(metavar="ACTION")
    batch = add_command(recall, "batch", "Recall a batch: every pack of it becomes RECALLED, "
                        "irreversibly; shows where its packs are.", _recall_batch)
    _batch_options(batch)
    _order_options(batch)
    material = add_command(recall, "material", "Recall every batch that used a supplier's "
                           "material lot, across products.", _recall_material)
    _material_options(material)
    _order_options(material)

    withdraw = add_command(commands, "withdraw", "Withdraw a product from the market: every "
                           "pack of it becomes WITHDRAWN, irreversibly.", _withdraw)
    withdraw.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    _order_options(withdraw)

    locate = add_command(commands, "locate", "Where a batch's packs are now: by holder and "
                         "region, in transit, at the plant, dispensed, voided.", _locate)
    _batch_options(locate)
    _json_option(locate)

    uses = add_command(commands, "material", "Batches that used a supplier's material lot, "
                       "with where their packs are.", _material)
    _material_options(uses)
    _json_option(uses)

    alerts = commands.add_parser("alerts", help="Diversion and clone alerts.").add_subparsers(
        metavar="ACTION")
    for name, text, run in (("list", "List alerts, oldest first.", _alerts_list),
                            ("watch", "Print alerts as they are raised, until interrupted.",
                             _alerts_watch)):
        sub = add_command(alerts, name, text, run)
        sub.add_argument("--kind", choices=sorted(_ALERT_KINDS))
        sub.add_argument("--product", help="GTIN or NMPA drug identifier")
        sub.add_argument("--lot", help="with --product")
        sub.add_argument("--region", help="GB/T 2260 prefix: 2, 4 or 6 digits")
        _json_option(sub)
    listing = alerts.choices["list"]
    listing.add_argument("--since", help="raised on or after this local day of the tenant's "
                         "time zone, YYYY-MM-DD (from its midnight there)")
    listing.add_argument("--until", help="raised before this local day of the tenant's time "
                         "zone, YYYY-MM-DD")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    alerts.choices["watch"].add_argument(
        "--after", type=int, default=-1,
        help="replay alerts after this id (default: only alerts raised from now on)")

    report = commands.add_parser("report", help="Reports.").add_subparsers(metavar="ACTION")
    region = add_command(report, "region", "Stock, receipts, sales and returns per product and "
                         "region.", _report_region)
    region.add_argument("--product", action="append", default=[],
                        help="GTIN or NMPA drug identifier (repeatable; default all)")
    region.add_argument("--from", dest="start", help="first day, YYYY-MM-DD, a local day of the "
                        "tenant's time zone (default: 29 days before --to)")
    region.add_argument("--to", dest="end", help="last day, YYYY-MM-DD, a local day of the "
                        "tenant's time zone (default: today there)")
    region.add_argument("--level", choices=_LEVELS, default="province")
    region.add_argument("--region", help="only this GB/T 2260 prefix")
    region.add_argument("--html", metavar="FILE", help="also write the report as a web page")
    region.add_argument("--map", default="stock", choices=("stock", "sold", "received",
                        "returned", "recalled"), help="the figure the page's map shades")
    _json_option(region)


def _batch_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    sub.add_argument("--lot", required=True)


def _material_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--supplier", required=True)
    sub.add_argument("--supplier-lot", required=True)


def _order_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--reason", required=True, help="why the packs come off the market")
    sub.add_argument("--party", help="the party ordering it")
    _json_option(sub)


def _json_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print the answer as JSON")


# -- recall, withdraw, locate ----------------------------------------------------------------------


def _recall_batch(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    response = endpoints(args).lifecycle().RecallBatch(pb.RecallBatchRequest(
        tenant=args.tenant, product=args.product, lot=args.lot, reason=args.reason,
        context=pb.EventContext(party_id=args.party or "")))
    return _print_recall(args, response)


def _recall_material(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    response = endpoints(args).lifecycle().RecallMaterial(pb.RecallMaterialRequest(
        tenant=args.tenant, supplier=args.supplier, supplier_lot=args.supplier_lot,
        reason=args.reason, context=pb.EventContext(party_id=args.party or "")))
    return _print_recall(args, response)


def _withdraw(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    response = endpoints(args).lifecycle().WithdrawProduct(pb.WithdrawProductRequest(
        tenant=args.tenant, product=args.product, reason=args.reason,
        context=pb.EventContext(party_id=args.party or "")))
    return _print_recall(args, response)


def _print_recall(args: argparse.Namespace, response: Any) -> int:
    if args.json:
        return _print_json(response)
    if not response.event_seqs:
        print("already recalled (withdrawn) before: nothing changed")
    for i, location in enumerate(response.batches):
        if i:
            print()
        print(location_text(location))
    return EXIT_OK


def _locate(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    response = endpoints(args).trace().LocateBatch(pb.LocateBatchRequest(
        tenant=args.tenant, product=args.product, lot=args.lot))
    if args.json:
        return _print_json(response)
    print(location_text(response.location))
    return EXIT_OK


def _material(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    response = endpoints(args).trace().BatchesUsingMaterial(pb.BatchesUsingMaterialRequest(
        tenant=args.tenant, supplier=args.supplier, supplier_lot=args.supplier_lot))
    if args.json:
        return _print_json(response)
    for i, use in enumerate(response.uses):
        if i:
            print()
        m = use.material
        print(f"{m.material} lot {m.supplier_lot} of {m.supplier}"
              + (f", {m.quantity}" if m.quantity else "") + ":")
        print(location_text(use.batch))
    return EXIT_OK


def location_text(location: Any) -> str:
    """A batch's picture for people: totals, then holders, then provinces."""
    from pharmatrace.v1 import common_pb2 as cpb

    lines = [f"Batch {location.lot} of {location.product} {location.product_name} "
             f"(expires {location.expires_on})"]
    for label, note in (("RECALLED", location.recall), ("WITHDRAWN", location.withdrawal)):
        if note.event_seq:
            by = f" by {note.who}" if note.who else ""
            party = f" for {note.party_id}" if note.party_id else ""
            lines.append(f"{label} {_when(note.when_ms)}{by}{party}: {note.reason} "
                         f"(event {note.event_seq})")
    lines.append(
        f"{location.units:,} units: at plant {location.at_plant:,}, in stock "
        f"{location.in_stock:,}, in transit {location.in_transit:,}, dispensed "
        f"{location.dispensed:,}, other decommissioned {location.other_decommissioned:,}, "
        f"destroyed or stolen {location.destroyed:,}, voided {location.voided:,}")
    rows: list[tuple[str, ...]]
    if location.holders:
        # As recorded for each pack: a recall or withdrawal (the lines above) is not written
        # into the packs' records, and verification answers RECALLED or WITHDRAWN for them.
        rows = [("holder", "kind", "region", "recorded status", "transit", "units")]
        for h in location.holders:
            rows.append((
                h.party_id or "(none)", cpb.PartyKind.Name(h.kind).removeprefix(
                    "PARTY_KIND_").lower().replace("unspecified", "-"),
                h.region or "-",
                cpb.CodeStatus.Name(h.status).removeprefix("CODE_STATUS_"),
                "in transit to" if h.in_transit else "", f"{h.units:,}"))
        lines += ["", *_table(rows, right={5})]
    if location.regions:
        rows = [("province", "in stock", "in transit", "dispensed")]
        rows += [(r.name or "(unknown)", f"{r.in_stock:,}", f"{r.in_transit:,}",
                  f"{r.dispensed:,}") for r in location.regions]
        lines += ["", *_table(rows, right={1, 2, 3})]
    return "\n".join(lines)


# -- alerts ----------------------------------------------------------------------------------------


def _alerts_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    if not 1 <= args.limit <= 100_000:
        raise CliError("--limit must be 1 to 100,000")
    stub = endpoints(args).trace()
    request = pb.ListAlertsRequest(
        tenant=args.tenant, kind=_ALERT_KINDS.get(args.kind or "", 0),  # type: ignore[arg-type]
        product=args.product or "", lot=args.lot or "", region=args.region or "",
        since=_date(args.since, "--since"), until=_date(args.until, "--until"),
        page_size=min(1000, args.limit))
    shown = 0
    while shown < args.limit:
        page = stub.ListAlerts(request)
        for alert in page.alerts[:args.limit - shown]:
            _print_alert(alert, args.json)
            shown += 1
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    if not shown and not args.json:
        print("no alerts", file=sys.stderr)
    return EXIT_OK


def _alerts_watch(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    stub = endpoints(args).trace()
    after = args.after
    if after < 0:
        after = stub.ListAlerts(pb.ListAlertsRequest(tenant=args.tenant, page_size=1)
                                ).last_alert_id
    request = pb.WatchAlertsRequest(
        tenant=args.tenant, kind=_ALERT_KINDS.get(args.kind or "", 0),  # type: ignore[arg-type]
        product=args.product or "", lot=args.lot or "", region=args.region or "",
        after_id=after)
    if not args.json:
        print(f"watching alerts after #{after} (Ctrl-C to stop)", file=sys.stderr)
    for message in stub.WatchAlerts(request):
        for alert in message.alerts:
            _print_alert(alert, args.json)
        sys.stdout.flush()
    return EXIT_OK


def _print_alert(alert: Any, as_json: bool) -> None:
    from google.protobuf import json_format
    from pharmatrace.v1 import verification_pb2 as vpb

    if as_json:
        print(json.dumps(json_format.MessageToDict(alert, preserving_proto_field_name=True),
                         ensure_ascii=False))
        return
    kind = vpb.AlertKind.Name(alert.kind).removeprefix("ALERT_KIND_").lower()
    print(f"#{alert.alert_id:<6} {_when(alert.raised_at_ms)}  {kind:15}  {alert.detail}")


# -- regional report -------------------------------------------------------------------------------


def _report_region(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    from pharmatrace_cli import region_page

    response = endpoints(args).trace().RegionReport(pb.RegionReportRequest(
        tenant=args.tenant, products=args.product, start=args.start or "", end=args.end or "",
        level=pb.RegionLevel.Value(f"REGION_LEVEL_{args.level.upper()}"),
        region=args.region or ""))
    if args.html:
        path = Path(args.html)
        page = region_page.render(response, args.tenant, args.region or "", args.map)
        if replaceable(path):
            part = path.with_name(path.name + ".part")
            part.write_text(page, encoding="utf-8")
            part.replace(path)
        else:
            path.write_text(page, encoding="utf-8")
    if args.json:
        return _print_json(response)
    print(f"{args.level.capitalize()} report {response.start} to {response.end} (days in "
          f"{response.time_zone or 'UTC'}): stock now, flows over the period (units)")
    rows: list[tuple[str, ...]] = [
        ("product", "region", "stock", "recalled", "received", "sold", "returned")]
    last = None
    totals = [0] * 5
    for row in response.rows:
        if last is not None and row.product != last:
            rows.append(("", "total", *(f"{t:,}" for t in totals)))
            totals = [0] * 5
        values = (row.stock, row.recalled, row.received, row.sold, row.returned)
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        rows.append((row.product if row.product != last else "", row.region_name,
                     *(f"{v:,}" for v in values)))
        last = row.product
    if last is not None:
        rows.append(("", "total", *(f"{t:,}" for t in totals)))
    print("\n".join(_table(rows, right={2, 3, 4, 5, 6})) if response.rows
          else "nothing in stock or moved in this period")
    if args.html:
        print(f"written to {args.html}", file=sys.stderr)
    return EXIT_OK


# -- helpers ---------------------------------------------------------------------------------------


def _print_json(message: Any) -> int:
    from google.protobuf import json_format

    print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True),
                     ensure_ascii=False, indent=2))
    return EXIT_OK


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        cells = [_pad(cell, widths[i], i in right) for i, cell in enumerate(row)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _width(text: str) -> int:
    """Columns a terminal gives the text: CJK characters take two."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _date(text: str | None, option: str) -> str:
    """A YYYY-MM-DD date as typed ("" when not given); the server cuts it in the tenant's zone."""
    if not text:
        return ""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise CliError(f"{option} must be a date YYYY-MM-DD") from None
