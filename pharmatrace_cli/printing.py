"""The packaging line's end: SSCC pools for logistic units, print jobs of a pool's codes, sealed
jobs and the line controller's keys. ``register`` adds `sscc`, `codes print`, `codes unseal`,
`line keygen` and `line simulate` to the `pharmatrace` parser.

Print jobs are rendered where the command runs (the line's integration host), not in the
issuance service: rendering is CPU work that would hold up the service's single writer, and
the codes are fetched from the service (over TLS) by replaying the pool's request id, which
returns exactly the codes already issued under it.
"""

from __future__ import annotations

import argparse
import os
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
_BATCH = 4096


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
    job = add_command(codes, "print", "Render a pool's codes for the line's printers: SVG or "
                      "PNG per symbol, PDF label sheets, ZPL, or a variable-data CSV.",
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
                     help="seal the job to this line controller's public key file")
    job.add_argument("--sign-key", metavar="KEY",
                     help="key file that signs a sealed job (from `line keygen`)")
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
    render = renders[args.format]
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
    from tracecore.errors import TraceError
    from tracecore.printing import seal
    from tracecore.printing.job import DirectorySink, JobWriter, Kind, Sink, TarSink

    kind = Kind(args.format)
    out = Path(args.out)
    if bool(args.seal) != bool(args.sign_key):
        raise CliError("a sealed job needs both --seal LINE_PUB and --sign-key KEY")
    try:
        if args.seal:
            recipient = seal.PublicKeys.from_pem(Path(args.seal).read_bytes())
            signer = seal.KeyPair.from_pem(Path(args.sign_key).read_bytes(), _passphrase())
            part = out.with_name(out.name + ".part")
            try:
                with open(part, "wb") as raw:
                    sealer = seal.Sealer(raw, recipient, signer)
                    tar = TarSink(sealer)  # type: ignore[arg-type]
                    count = _render_pool(args, JobWriter(kind, tar, png_scale=args.png_scale))
                    tar.close()
                    sealer.close()
                part.replace(out)
            finally:
                part.unlink(missing_ok=True)  # a job cut short is never left looking sealed
            print(f"{count:,} labels ({kind.value}) sealed to line key {recipient.fingerprint} "
                  f"in {out}", file=sys.stderr)
            return EXIT_OK
        sink: Sink = DirectorySink(out) if kind.per_symbol else _FileSink(out)
        count = _render_pool(args, JobWriter(kind, sink, png_scale=args.png_scale))
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    print(f"{count:,} labels ({kind.value}) written to {out}", file=sys.stderr)
    return EXIT_OK


def _render_pool(args: argparse.Namespace, writer: Any) -> int:
    """Feeds the pool's labels to the job writer, then closes it; the number of labels."""
    from pharmatrace.v1 import admin_pb2 as apb
    from pharmatrace.v1 import issuance_pb2 as ipb
    from pharmatrace.v1 import logistics_pb2 as lpb

    from tracecore.codes import Scheme
    from tracecore.printing import labels

    symbology = labels.Symbology(args.symbology) if args.symbology else None
    if args.sscc:
        pool = _logistics(args).GetSsccPool(lpb.GetSsccPoolRequest(tenant=args.tenant,
                                                                   request_id=args.pool))
        ssccs = list(pool.ssccs)
        for start in range(0, len(ssccs), _BATCH):
            writer.add(labels.for_ssccs(ssccs[start:start + _BATCH], start=start))
    else:
        services = endpoints(args)
        issuance = services.issuance()
        pool = issuance.GetPool(ipb.GetPoolRequest(tenant=args.tenant, request_id=args.pool)).pool
        if pool.state != ipb.POOL_STATE_COMPLETE:
            raise CliError(f"pool {args.pool} is still open ({pool.issued:,} of {pool.count:,} "
                           "issued): complete it with `codes request` under the same request id")
        expiry = None
        if pool.lot:
            batch = services.admin().GetBatch(apb.GetBatchRequest(
                tenant=args.tenant, product=pool.product, lot=pool.lot)).batch
            expiry = batch.expires_on[2:4] + batch.expires_on[5:7] + batch.expires_on[8:10]
        # A retry under the pool's own request id streams exactly the codes issued under it.
        chunks = issuance.RequestCodes(ipb.RequestCodesRequest(
            tenant=args.tenant, product=pool.product, lot=pool.lot, level=pool.level,
            count=pool.count, request_id=pool.request_id))
        for chunk in chunks:
            writer.add(labels.for_codes(Scheme(chunk.scheme), chunk.product, chunk.serials,
                                        lot=pool.lot or None, expiry=expiry, symbology=symbology,
                                        host=args.host, start=chunk.offset))
    writer.close()
    count: int = writer.count
    return count


class _FileSink:
    """The job's one file, written to the path given (whole, then renamed into place)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def put(self, name: str, data: bytes) -> None:
        part = self._path.with_name(self._path.name + ".part")
        part.write_bytes(data)
        part.replace(self._path)

    def put_stream(self, name: str, stream: IO[bytes], size: int) -> None:
        import shutil

        part = self._path.with_name(self._path.name + ".part")
        with open(part, "wb") as out:
            shutil.copyfileobj(stream, out)
        part.replace(self._path)


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
