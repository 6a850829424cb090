"""`pharmatrace demo`: a short walk through issuance and verification against running services."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb

from pharmatrace_cli.client import Endpoints
from pharmatrace_cli.command import EXIT_OK, add_command, endpoints
from tracecore.codes import Code, Form, Scan, Scheme, render

DEMO_GTIN = "09501101530096"
DEMO_LOT = "DEMO-1"


def register(commands: Any) -> None:
    """Adds demo to the command group."""
    add_command(commands, "demo", "Run a short scenario against running services.", _demo)


def _demo(args: argparse.Namespace) -> int:
    run_demo(endpoints(args), args.tenant, print)
    return EXIT_OK


def run_demo(endpoints: Endpoints, tenant: str, say: Callable[[str], None]) -> None:
    admin = endpoints.admin()
    issuance = endpoints.issuance()
    verification = endpoints.verification()
    expires = (dt.date.today() + dt.timedelta(days=730)).isoformat()
    try:
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
            gtin=DEMO_GTIN, name="Ibuprofen 200 mg tablets (demo)", form="tablet",
            strength="200 mg", pack_size=24)))
        say(f"registered product {DEMO_GTIN}")
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.ALREADY_EXISTS:
            raise
        say(f"product {DEMO_GTIN} already registered")
    try:
        admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
            product=DEMO_GTIN, lot=DEMO_LOT, manufactured_on=dt.date.today().isoformat(),
            expires_on=expires)))
        say(f"added batch {DEMO_LOT}, expires {expires}")
    except grpc.RpcError as exc:
        if exc.code() is not grpc.StatusCode.ALREADY_EXISTS:
            raise
        say(f"batch {DEMO_LOT} already there")
        expires = admin.GetBatch(apb.GetBatchRequest(
            tenant=tenant, product=DEMO_GTIN, lot=DEMO_LOT)).batch.expires_on
    request_id = f"demo-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    serials: list[str] = []
    for chunk in issuance.RequestCodes(ipb.RequestCodesRequest(
            tenant=tenant, product=DEMO_GTIN, lot=DEMO_LOT, count=5, request_id=request_id)):
        serials.extend(chunk.serials)
    expiry = expires[2:4] + expires[5:7] + expires[8:10]
    scans = [Scan(Code(Scheme.GS1, DEMO_GTIN, s), DEMO_LOT, expiry) for s in serials]
    say(f"requested 5 codes under request id {request_id}:")
    for scan in scans:
        say(f"  {render(scan, Form.HRI)}")
    say(f"as a GS1 Digital Link: {render(scans[0], Form.DIGITAL_LINK)}")
    issuance.ReturnCodes(ipb.ReturnCodesRequest(
        tenant=tenant, codes=[render(scans[-1], Form.HRI)], reason=ipb.RETURN_REASON_SCRAPPED))
    say("returned the last code as scrapped")
    forged = serials[0][:-1] + ("A" if serials[0][-1] != "A" else "B")
    checks = [
        ("first code, scanned as a DataMatrix element string", render(scans[0], Form.ELEMENT)),
        ("first code again", render(scans[0], Form.HRI)),
        ("returned code", render(scans[-1], Form.HRI)),
        ("first code with one character changed", f"(01){DEMO_GTIN}(21){forged}"),
        ("not a code", "hello"),
    ]
    for label, text in checks:
        r = verification.Verify(vpb.VerifyRequest(tenant=tenant, code=text))
        alerts = ", ".join(vpb.AlertKind.Name(a).removeprefix("ALERT_KIND_").lower()
                           for a in r.alerts)
        say(f"verify {label}: {vpb.Verdict.Name(r.verdict).removeprefix('VERDICT_')}"
            + (f", {cpb.CodeStatus.Name(r.status).removeprefix('CODE_STATUS_')}"
               if r.status else "")
            + (f", alerts: {alerts}" if alerts else "")
            + (f", queried {r.scan_count}x" if r.scan_count else ""))
