"""The packaging line's end: SSCC pools for logistic units, print jobs of a pool's codes, sealed
jobs and the line controller's keys. ``register`` adds `sscc`, `codes print`, `codes unseal`,
`line keygen` and `line simulate` to the `pharmatrace` parser.

Print jobs are rendered by the verification service (`PrintJobs.PrintPool`), which reads the
ledger read-only, so rendering never holds up the issuance service's single writer, and sends
them sealed: codes leave the server only encrypted. `codes print --seal` keeps the job sealed to
a line controller's key; without it the job is sealed to a key made for the run and opened here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pharmatrace_cli import line_simulator
from pharmatrace_cli.command import (
    EXIT_NOT_GENUINE,
    EXIT_OK,
    CliError,
    add_command,
    endpoints,
    subgroup,
)

#: The passphrase that encrypts line key files at rest, if set (never on the command line).
PASSPHRASE_ENV = "PHARMATRACE_LINE_KEY_PASSPHRASE"  # noqa: S105 - the variable's name
_SSCC_FORMATS = ("digits", "hri", "element", "digital-link", "epc-uri")


def register(commands: Any) -> None:
    """Adds sscc, codes print, codes unseal and line keygen to the command group."""
    sscc = commands.add_parser("sscc", help="SSCCs (AI 00) for cases and pallets."
                               ).add_subparsers(metavar="ACTION")
    prefix = add_command(sscc, "prefix", "Register a GS1 company prefix of the tenant, or list "
                         "them (without PREFIX).", _sscc_prefix)
    prefix.add_argument("prefix", nargs="?", help="6 to 12 digits, as GS1 assigned it")
    request = add_command(sscc, "request", "Request a pool of SSCCs (idempotent by request id).",
                          sscc_request)
    request.add_argument("--count", type=int, required=True, help="1 to 100,000")
    request.add_argument("--request-id", required=True,
                         help="idempotency key: repeat it to get the same SSCCs again")
    request.add_argument("--company-prefix", default="",
                         help="a registered prefix (default: the tenant's only one)")
    request.add_argument("--extension-digit", type=int, default=0, help="0 to 9 (default 0)")
    request.add_argument("--format", choices=_SSCC_FORMATS, default="hri")
    request.add_argument("--host", default="https://id.gs1.org", help="Digital Link host")
    request.add_argument("--out", help="file to write, one SSCC per line (default stdout)")
    show = add_command(sscc, "show", "Whether the tenant allocated an SSCC (any written form), "
                       "and under which prefix: an SSCC's authenticity.", _sscc_show)
    show.add_argument("sscc", help="18 digits, (00)…, ]C100…, a Digital Link /00/ or an EPC URI")

    codes = subgroup(commands, "codes", "Request and return code pools.")
    job = add_command(codes, "print", "A pool's codes as the line's printers take them: SVG or "
                      "PNG per symbol, PDF label sheets, ZPL, or a variable-data CSV, rendered "
                      "by the verification service and sent sealed.",
                      _codes_print)
    job.add_argument("--pool", required=True, help="the pool's request id")
    job.add_argument("--sscc", action="store_true", help="the pool is an SSCC pool")
    job.add_argument("--format", choices=("svg", "png", "pdf", "zpl", "csv"), required=True)
    job.add_argument("--out", required=True,
                     help="directory (svg, png) or file (pdf, zpl, csv, or any sealed job)")
    job.add_argument("--symbology", choices=("datamatrix", "qr", "gs1-qr", "code128"),
                     help="GS1 codes: datamatrix (default), qr (Digital Link), gs1-qr; "
                     "NMPA codes: code128")
    job.add_argument("--host", default="https://id.gs1.org", help="Digital Link host (qr)")
    job.add_argument("--png-scale", type=int, default=4, help="PNG pixels per module")
    job.add_argument("--seal", metavar="LINE_PUB",
                     help="write the job sealed to this line controller's public key file "
                     "(`line keygen`), as the server sends it, for `codes unseal`")
    job.add_argument("--signer-out", metavar="PUB",
                     help="also write the tenant's print-signing public key to this file "
                     "(what `codes unseal --signer` accepts)")
    unseal = add_command(codes, "unseal", "Open a sealed print job with the line's key: checks "
                         "its signature, decrypts it, writes its files.", _codes_unseal,
                         client=False, tenant=False)
    unseal.add_argument("job", help="the sealed job file")
    unseal.add_argument("--key", required=True, help="the line controller's key file")
    unseal.add_argument("--signer", metavar="PUB",
                        help="accept only jobs signed by this public key file")
    unseal.add_argument("--out", required=True, help="directory for the job's files")

    line = commands.add_parser("line", help="Packaging line controllers.").add_subparsers(
        metavar="ACTION")
    keygen = add_command(line, "keygen", "Create a key pair for a line controller (or for the "
                         "host that signs print jobs): NAME.key and NAME.pub.", _line_keygen,
                         client=False, tenant=False)
    keygen.add_argument("--out", required=True, help="NAME: writes NAME.key and NAME.pub")
    line_simulator.register(line, add_command)


def _logistics(args: argparse.Namespace) -> Any:
    from pharmatrace.v1 import logistics_pb2_grpc

    services = endpoints(args)
    return logistics_pb2_grpc.LogisticUnitsStub(services.channel(services.issue))


def _sscc_prefix(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import logistics_pb2 as pb

    stub = _logistics(args)
    if args.prefix:
        stub.RegisterCompanyPrefix(pb.RegisterCompanyPrefixRequest(
            tenant=args.tenant, company_prefix=args.prefix))
        print(f"company prefix {args.prefix} registered")
        return EXIT_OK
    for prefix in stub.ListCompanyPrefixes(
            pb.ListCompanyPrefixesRequest(tenant=args.tenant)).company_prefixes:
        print(prefix.company_prefix)
    return EXIT_OK


def sscc_request(args: argparse.Namespace) -> int:
    """`sscc request`, and `codes request --sscc`: an SSCC pool written one SSCC a line."""
    from pharmatrace.v1 import logistics_pb2 as pb

    from tracecore import sscc

    pool = _logistics(args).RequestSsccs(pb.RequestSsccsRequest(
        tenant=args.tenant, request_id=args.request_id, company_prefix=args.company_prefix,
        extension_digit=args.extension_digit, count=args.count))
    renders: dict[str, Callable[[str], str]] = {
        "digits": str,
        "hri": sscc.render_hri,
        "element": sscc.render_element,
        "digital-link": lambda s: sscc.render_digital_link(s, args.host),
        "epc-uri": lambda s: sscc.render_epc_uri(s, len(pool.company_prefix)),
    }
    render = renders[args.format or "hri"]
    text = "".join(render(s) + "\n" for s in pool.ssccs)
    if args.out and args.out != "-":
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    print(f"{len(pool.ssccs):,} SSCCs under {pool.extension_digit}/{pool.company_prefix}, "
          f"request {pool.request_id}", file=sys.stderr)
    return EXIT_OK


def _sscc_show(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import logistics_pb2 as pb

    state = _logistics(args).GetSsccState(pb.GetSsccStateRequest(tenant=args.tenant,
                                                                  sscc=args.sscc))
    print(f"(00){state.sscc} " + (f"allocated under company prefix {state.company_prefix}"
                                  if state.allocated else "not allocated by this tenant"))
    return EXIT_OK if state.allocated else EXIT_NOT_GENUINE


def _codes_print(args: argparse.Namespace) -> int:
    import tempfile

    from tracecore.errors import TraceError
    from tracecore.printing import seal

    out = Path(args.out)
    try:
        if args.seal:
            recipient = seal.PublicKeys.from_pem(Path(args.seal).read_bytes())
            part = out.with_name(out.name + ".part")
            try:
                with open(part, "wb") as raw:
                    first = _fetch_job(args, recipient, raw)
                part.replace(out)
            finally:
                part.unlink(missing_ok=True)  # a job cut short is never left looking sealed
            _write_signer(args, first)
            print(f"{first.labels:,} labels ({args.format}) sealed to line key "
                  f"{first.line_key_fingerprint}, signed by {first.signer_fingerprint}, in {out}",
                  file=sys.stderr)
            return EXIT_OK
        # Unsealed files are wanted here: the job is sealed to a key made for this one run,
        # then opened as a line controller would open it.
        key = seal.KeyPair.generate()
        with tempfile.TemporaryDirectory(prefix="pharmatrace-print-") as scratch:
            sealed = Path(scratch) / "job.sealed"
            with open(sealed, "wb") as raw:
                first = _fetch_job(args, key.public(), raw)
            signer = seal.PublicKeys.from_pem(first.signer_key)
            with seal.open_sealed(sealed, key, signer) as plain, \
                    tarfile.open(fileobj=plain, mode="r|") as tar:
                _write_job(tar, out, per_symbol=args.format in ("svg", "png"))
        _write_signer(args, first)
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    print(f"{first.labels:,} labels ({args.format}) written to {out}", file=sys.stderr)
    return EXIT_OK


def _fetch_job(args: argparse.Namespace, line_key: Any, out: IO[bytes]) -> Any:
    """Streams the pool's job, sealed to ``line_key``, from the verification service into
    ``out``; the first message (what the job holds, who signed it)."""
    from pharmatrace.v1 import printing_pb2 as pb
    from pharmatrace.v1 import printing_pb2_grpc

    services = endpoints(args)
    stub = printing_pb2_grpc.PrintJobsStub(services.channel(services.verify))
    first = None
    for chunk in stub.PrintPool(pb.PrintPoolRequest(
            tenant=args.tenant, request_id=args.pool, sscc=args.sscc,
            format=pb.PrintFormat.Value(f"PRINT_FORMAT_{args.format.upper()}"),
            symbology=pb.PrintSymbology.Value(
                "PRINT_SYMBOLOGY_" + (args.symbology or "unspecified").upper().replace("-", "_")),
            digital_link_host=args.host, png_scale=args.png_scale,
            line_key=line_key.to_pem())):
        if first is None:
            first = chunk
        out.write(chunk.data)
    if first is None:
        raise CliError("the server sent an empty print job")
    return first


def _write_job(tar: tarfile.TarFile, out: Path, *, per_symbol: bool) -> None:
    """The job's files: into the directory ``out`` (one per symbol), or its one file as
    ``out`` (whole, then renamed into place)."""
    if per_symbol:
        out.mkdir(parents=True, exist_ok=True)
    for member in tar:
        if not member.isfile():
            continue
        if per_symbol:
            tar.extract(member, out, filter="data")
            continue
        source = tar.extractfile(member)
        assert source is not None
        part = out.with_name(out.name + ".part")
        try:
            with open(part, "wb") as target:
                shutil.copyfileobj(source, target)
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)


def _write_signer(args: argparse.Namespace, first: Any) -> None:
    if args.signer_out:
        Path(args.signer_out).write_bytes(first.signer_key)


def _codes_unseal(args: argparse.Namespace) -> int:
    from tracecore.errors import TraceError
    from tracecore.printing import seal

    job = Path(args.job)
    out = Path(args.out)
    try:
        key = seal.KeyPair.from_pem(Path(args.key).read_bytes(), _passphrase())
        signer = seal.PublicKeys.from_pem(Path(args.signer).read_bytes()) if args.signer else None
        out.mkdir(parents=True, exist_ok=True)
        names = []
        with seal.open_sealed(job, key, signer) as plain, \
                tarfile.open(fileobj=plain, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                tar.extract(member, out, filter="data")
                names.append(member.name)
    except TraceError as exc:
        raise CliError(f"refused: {exc}") from exc
    except tarfile.TarError as exc:
        raise CliError(f"refused: the job's contents are not a print job ({exc})") from exc
    print(f"{len(names):,} files from a job signed by {seal.signer_of(job)} written to {out}",
          file=sys.stderr)
    return EXIT_OK


def _line_keygen(args: argparse.Namespace) -> int:
    from tracecore.printing import seal

    base = Path(args.out)
    key_path, pub_path = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    if key_path.exists():
        raise CliError(f"{key_path} exists: a key is never overwritten")
    pair = seal.KeyPair.generate()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pair.to_pem(_passphrase()))
    pub_path.write_bytes(pair.public().to_pem())
    public = pair.public()
    print(f"{key_path} (private{', encrypted' if _passphrase() else ''}) and {pub_path}: "
          f"line key {public.fingerprint}, signing key {public.signer_fingerprint}")
    return EXIT_OK


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None
