"""`pharmatrace codes register`, `party confirm / merge`, `receipt check`: what partners tell
the ledger (codes minted elsewhere, parties named in their events) and a receipt against its bill.

`codes register` sends the codes in chunks over one RegisterCodes stream: the next chunks travel
while the first are written, and each chunk's answer moves the progress bar.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pharmatrace_cli.command import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Progress,
    Rows,
    add_command,
    add_output_options,
    endpoints,
    read_inputs,
    subgroup,
)

DEFAULT_CHUNK = 10_000
"""Codes per message: the server's most, so that a million codes are a hundred messages."""
FAILURES_SHOWN = 20


def register(commands: Any) -> None:
    """Adds codes register, party confirm, party merge and receipt check."""
    codes = subgroup(commands, "codes", "Request and return code pools.")
    reg = add_command(
        codes, "register", "Record codes minted elsewhere (other companies' GTINs, other "
        "issuers' NMPA codes) with who minted them and who told us. Codes come from the "
        "arguments, then --file (one a line; '-' is standard input).", _register,
        example="pharmatrace codes register --tenant acme --file supplier-codes.txt "
                "--minted-by 0614141 --source wholesaler-1")
    reg.add_argument("codes", nargs="*")
    reg.add_argument("--file", help="file with one code per line ('-' for stdin)")
    reg.add_argument("--minted-by", default="", metavar="PARTY",
                     help="who minted them: a party id, GS1 company prefix, code-issuing body")
    reg.add_argument("--source", default="", metavar="PARTY",
                     help="who told us about them (default: this credential)")
    reg.add_argument("--unused", action="store_true",
                     help="codes not yet on packs, for a line to commission (default: packs "
                          "on the market)")
    reg.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK,
                     help=f"codes per message (default {DEFAULT_CHUNK:,})")
    reg.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")

    party = subgroup(commands, "party", "Parties of the supply chain.")
    confirm = add_command(party, "confirm", "Confirm an external party (recorded on first sight "
                          "of a partner's event) as one of this tenant's parties.", _confirm,
                          example="pharmatrace party confirm gln-0614141000012 --tenant acme")
    confirm.add_argument("party_id", metavar="ID")
    merge = add_command(party, "merge", "Merge an external party into a registered one: its "
                        "identifier resolves to that party and the packs it holds move to it.",
                        _merge, example="pharmatrace party merge gln-0614141000012 --into "
                        "wh-shanghai --tenant acme")
    merge.add_argument("external", metavar="EXTERNAL")
    merge.add_argument("--into", required=True, metavar="PARTY")

    receipt = subgroup(commands, "receipt", "Receipts against their bills.")
    check = add_command(receipt, "check", "Check a receipt against the shipped bill: packs "
                        "shipped and not received (missing), received and not shipped (extra).",
                        _check, example="pharmatrace receipt check --bill DA-2026-0042 "
                        "--tenant acme")
    check.add_argument("--bill", required=True, metavar="NUMBER", help="the document's number")
    check.add_argument("--type", default="desadv",
                       help="document type: desadv (default), po, inv, or your own (crkd)")
    add_output_options(check)


def _register(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    codes = list(read_inputs(args.codes, args.file))
    if not codes:
        raise CliError("no codes given (arguments or --file)")
    if not 1 <= args.chunk_size <= DEFAULT_CHUNK:
        raise CliError(f"--chunk-size must be between 1 and {DEFAULT_CHUNK:,}")
    chunks = [codes[i:i + args.chunk_size] for i in range(0, len(codes), args.chunk_size)]
    requests = (pb.RegisterCodesRequest(tenant=args.tenant, codes=chunk,
                                        minted_by=args.minted_by, source=args.source,
                                        unused=args.unused) for chunk in chunks)
    started = time.monotonic()
    progress = Progress(len(codes), enabled=sys.stderr.isatty() and not args.quiet)
    registered = known = done = 0
    failures: list[tuple[str, str]] = []
    try:
        for chunk, answer in zip(chunks, endpoints(args).lifecycle().RegisterCodes(requests),
                                 strict=True):
            registered += answer.registered
            known += answer.known
            failures.extend((f.code, f.reason) for f in answer.failures)
            done += len(chunk)
            progress.update(done)
    finally:
        progress.done()
    elapsed = time.monotonic() - started
    for code, reason in failures[:FAILURES_SHOWN]:
        print(f"refused {code}: {reason}", file=sys.stderr)
    if len(failures) > FAILURES_SHOWN:
        print(f"... and {len(failures) - FAILURES_SHOWN:,} more refused", file=sys.stderr)
    if not args.quiet:
        print(f"{len(codes):,} codes in {elapsed:.1f} s ({len(codes) / max(elapsed, 1e-9):,.0f}"
              f"/s): {registered:,} registered, {known:,} already known, "
              f"{len(failures):,} refused", file=sys.stderr)
    return EXIT_ERROR if failures else EXIT_OK


def _confirm(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    answer = endpoints(args).admin().ConfirmParty(
        pb.ConfirmPartyRequest(tenant=args.tenant, party_id=args.party_id))
    print(f"confirmed {answer.party.party_id} ({answer.party.identifier or answer.party.gln})")
    return EXIT_OK


def _merge(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    answer = endpoints(args).admin().MergeParty(
        pb.MergePartyRequest(tenant=args.tenant, external=args.external, into=args.into))
    print(f"merged {args.external} into {answer.party.party_id}: "
          f"{answer.packs_moved:,} packs moved")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import trace_pb2 as pb

    answer = endpoints(args).trace().CheckReceipt(pb.CheckReceiptRequest(
        tenant=args.tenant, document=cpb.BusinessDocument(type=args.type, id=args.bill)))
    rows = Rows(args.output, ("STATE", "CODE"))
    for state, listed in (("missing", answer.missing), ("extra", answer.extra)):
        for code in listed:
            rows.write({"state": state, "code": code}, (state, code))
    rows.close()
    if not answer.ship_events and not answer.receive_events:
        raise CliError(f"bill {args.type} {args.bill}: nothing was shipped or received under it "
                       "that this credential may see (check the number and --type)")
    print(f"bill {args.type} {args.bill}: {answer.shipped:,} packs shipped, "
          f"{answer.received:,} received, {answer.missing_count:,} missing, "
          f"{answer.extra_count:,} extra", file=sys.stderr)
    return EXIT_ERROR if answer.missing_count or answer.extra_count else EXIT_OK
