"""Code pool commands: request a pool for a packaging line, return unused or scrapped codes,
show a pool."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pharmatrace_cli.command import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Output,
    Progress,
    Rows,
    add_command,
    add_output_options,
    endpoints,
    read_inputs,
)


def register(commands: Any) -> None:
    """Adds codes and pool to the command group."""
    codes = commands.add_parser("codes", help="Request and return code pools.").add_subparsers(
        metavar="ACTION")
    req = add_command(codes, "request", "Request a pool of codes for a packaging line.",
                  _codes_request)
    req.add_argument("--product", help="GTIN or NMPA drug identifier (not with --sscc)")
    req.add_argument("--sscc", action="store_true",
                     help="a pool of SSCCs for cases and pallets instead, as `sscc request`")
    req.add_argument("--company-prefix", default="",
                     help="--sscc: a registered prefix (default: the tenant's only one)")
    req.add_argument("--extension-digit", type=int, default=0,
                     help="--sscc: 0 to 9 (default 0)")
    req.add_argument("--count", type=int, required=True)
    req.add_argument("--request-id", required=True,
                     help="idempotency key: repeat it to resume an interrupted request")
    req.add_argument("--lot", help="bind the pool to this batch (printed lot and expiry)")
    req.add_argument("--level", choices=_LEVELS, default="unit")
    req.add_argument("--format", choices=("hri", "element", "digital-link", "nmpa20",
                                          "epc-uri", "digits"),
                     help="default: hri for a GS1 product, nmpa20 for an NMPA one; epc-uri and "
                          "digits: --sscc only")
    req.add_argument("--host", default="https://id.gs1.org", help="Digital Link host")
    req.add_argument("--out", help="file to write, one code per line (default stdout)")
    req.add_argument("--quiet", action="store_true")
    ret = add_command(codes, "return", "Return unused or scrapped codes: they are voided.",
                  _codes_return)
    ret.add_argument("codes", nargs="*")
    ret.add_argument("--file", help="file with one code per line ('-' for stdin)")
    ret.add_argument("--scrapped", action="store_true",
                     help="printed but rejected (default: unused)")

    pool = commands.add_parser("pool", help="Show code pools.").add_subparsers(metavar="ACTION")
    show = add_command(pool, "show", "Show a pool's parameters and counts.", _pool_show,
                       example="pharmatrace pool show --tenant acme --request-id line4-0001")
    add_output_options(show)
    show.add_argument("--request-id", required=True)


_LEVELS = ("unit", "bundle", "case", "pallet")


def _codes_request(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as apb
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import issuance_pb2 as pb

    from tracecore.codes import Code, Form, Scan, Scheme, render
    from tracecore.errors import TraceError

    if args.sscc:
        if args.product or args.lot or args.format == "nmpa20":
            raise CliError("--sscc takes no --product, --lot or nmpa20 format: an SSCC names "
                           "a case or pallet, not a product")
        from pharmatrace_cli.printing import sscc_request

        return sscc_request(args)
    if not args.product:
        raise CliError("--product is required (or --sscc for a pool of SSCCs)")
    if args.format in ("epc-uri", "digits"):
        raise CliError(f"--format {args.format} is for --sscc pools")
    services = endpoints(args)
    expiry = None
    if args.lot:
        batch = services.admin().GetBatch(
            apb.GetBatchRequest(tenant=args.tenant, product=args.product, lot=args.lot)).batch
        expiry = batch.expires_on[2:4] + batch.expires_on[5:7] + batch.expires_on[8:10]
    request = pb.RequestCodesRequest(
        tenant=args.tenant, product=args.product, lot=args.lot or "",
        level=cpb.PackagingLevel.Value(f"PACKAGING_LEVEL_{args.level.upper()}"),
        count=args.count, request_id=args.request_id,
    )
    progress = Progress(args.count, enabled=sys.stderr.isatty() and not args.quiet)
    received = 0
    with Output(args.out) as out:
        for chunk in services.issuance().RequestCodes(request):
            scheme = Scheme(chunk.scheme)
            form = Form(args.format or (Form.NMPA20 if scheme is Scheme.NMPA else Form.HRI))
            lines = []
            for serial in chunk.serials:
                code = Code(scheme, chunk.product, serial)
                try:
                    lines.append(render(Scan(code, args.lot or None, expiry), form,
                                        host=args.host))
                except TraceError as exc:
                    raise CliError(
                        f"cannot render as {form.value}: {exc}; the codes are issued: run "
                        "again with the same --request-id and another --format") from exc
            out.write("\n".join(lines) + "\n")
            received = chunk.total
            progress.update(received)
    progress.done()
    if not args.quiet:
        print(f"{received:,} codes of {args.product} under request {args.request_id}"
              + (f" written to {args.out}" if args.out and args.out != "-" else ""),
              file=sys.stderr)
    return EXIT_OK


def _codes_return(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import issuance_pb2 as pb

    codes = list(read_inputs(args.codes, args.file))
    if not codes:
        raise CliError("no codes given (arguments or --file)")
    reason = pb.RETURN_REASON_SCRAPPED if args.scrapped else pb.RETURN_REASON_UNUSED
    stub = endpoints(args).issuance()
    voided = 0
    failures = 0
    for start in range(0, len(codes), 100_000):
        part = codes[start:start + 100_000]
        response = stub.ReturnCodes(pb.ReturnCodesRequest(tenant=args.tenant, codes=part,
                                                          reason=reason))
        voided += response.voided
        for failure in response.failures:
            failures += 1
            print(f"not returned: {failure.code}: {failure.reason}", file=sys.stderr)
    print(f"{voided:,} codes voided" + (f", {failures:,} refused" if failures else ""))
    return EXIT_OK if not failures else EXIT_ERROR


def _pool_show(args: argparse.Namespace) -> int:
    from google.protobuf import json_format
    from pharmatrace.v1 import issuance_pb2 as pb

    pool = endpoints(args).issuance().GetPool(
        pb.GetPoolRequest(tenant=args.tenant, request_id=args.request_id)).pool
    doc = json_format.MessageToDict(pool)
    with Rows(args.output, ("FIELD", "VALUE")) as rows:
        if rows.format == "table" or rows.format == "csv":
            for name, value in doc.items():
                rows.write(doc, (name, json.dumps(value, ensure_ascii=False)
                                 if isinstance(value, dict | list) else value))
        else:
            rows.write(doc, ())
    return EXIT_OK
