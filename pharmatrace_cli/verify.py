"""`pharmatrace verify`: genuine or not, status, alerts, scan count."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from pharmatrace_cli.command import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    add_command,
    endpoints,
    read_inputs,
)


def register(commands: Any) -> None:
    """Adds verify to the command group."""
    verify = add_command(commands, "verify", "Verify codes: genuine, status, alerts.", _verify)
    verify.add_argument("codes", nargs="*")
    verify.add_argument("--file", help="file with one code per line ('-' for stdin)")
    verify.add_argument("--json", action="store_true", help="one JSON object per line")
    verify.add_argument("--region", help="scanner's GB/T 2260 region")
    verify.add_argument("--party", help="scanner's party id")


def _verify(args: argparse.Namespace) -> int:
    from google.protobuf import json_format
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import verification_pb2 as pb

    codes = list(read_inputs(args.codes, args.file))
    if not codes:
        raise CliError("no codes given (arguments or --file)")
    stub = endpoints(args).verification()
    context = pb.ScanContext(party_id=args.party or "", region=args.region or "")
    all_genuine = True
    for code in codes:
        response = stub.Verify(pb.VerifyRequest(tenant=args.tenant, code=code, context=context))
        genuine = response.verdict == pb.VERDICT_GENUINE
        all_genuine &= genuine and not response.alerts
        if args.json:
            doc = json_format.MessageToDict(response, preserving_proto_field_name=True)
            doc["input"] = code
            print(json.dumps(doc, ensure_ascii=False))
            continue
        verdict = pb.Verdict.Name(response.verdict).removeprefix("VERDICT_")
        line = f"{verdict:14} {response.code or code}"
        if genuine or response.status:
            line += f"  {cpb.CodeStatus.Name(response.status).removeprefix('CODE_STATUS_')}"
        if response.product.name:
            line += f"  {response.product.name}"
        if response.batch.lot:
            line += f"  lot {response.batch.lot} exp {response.batch.expires_on}"
        if response.alerts:
            line += "  alerts: " + ", ".join(
                pb.AlertKind.Name(a).removeprefix("ALERT_KIND_").lower() for a in response.alerts)
        if response.scan_count:
            first = time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.localtime(response.first_verified_at_ms / 1000))
            times = "time" if response.scan_count == 1 else "times"
            line += f"  queried {response.scan_count} {times}, first on {first}"
        if response.reason and not genuine:
            line += f"  ({response.reason})"
        print(line)
    return EXIT_OK if all_genuine else EXIT_ERROR
