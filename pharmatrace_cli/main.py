"""The `pharmatrace` command: run the services, administer a tenant, request and verify codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import grpc

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.run(args)
        return result
    except CliError as exc:
        print(f"pharmatrace: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except grpc.RpcError as exc:
        print(f"pharmatrace: {_rpc_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pharmatrace: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return EXIT_OK
        where = f": {exc.filename}" if exc.filename else ""
        print(f"pharmatrace: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR


def _rpc_message(exc: grpc.RpcError) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code is grpc.StatusCode.UNAVAILABLE and "connect" in (details or ""):
        return f"service unavailable ({details}); is `pharmatrace serve` running?"
    return f"{code.name if code else 'error'}: {details}"


# -- serve ---------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from pharmatrace_cli.serve import ServeConfig, prepare_metrics_dir, serve

    if not args.insecure and not args.tls_cert:
        raise CliError("TLS needs --tls-cert and --tls-key (create development ones with "
                       "`pharmatrace certs init`); or pass --insecure to serve plaintext")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    prepare_metrics_dir(data)
    from tracerpc.logs import configure_logging

    configure_logging()
    config = ServeConfig(
        data=data, host=args.host, issue_port=args.issue_port, verify_port=args.verify_port,
        metrics_port=args.metrics_port, workers=args.workers or os.cpu_count() or 1,
        dev=args.dev, tls_cert=_path(args.tls_cert), tls_key=_path(args.tls_key),
        client_ca=_path(args.client_ca), grace_s=args.grace, ready_file=_path(args.ready_file),
        authenticate=not args.dev, public_verify=args.public_verify,
        public_rate=args.public_rate, nats=args.nats,
        replicated_commit=args.replicated_commit,
    )
    import asyncio

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from tracecore.errors import TraceError

    try:
        asyncio.run(serve(config))
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    return EXIT_OK


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


# -- admin ---------------------------------------------------------------------------------------


def _tenant_create(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    response = endpoints(args).admin().CreateTenant(
        pb.CreateTenantRequest(tenant=args.tenant_id, name=args.name or args.tenant_id))
    print(f"tenant {response.tenant} created (signing key {response.active_key_id})")
    if response.admin_token:
        print(f"admin token (shown once, keep it secret): {response.admin_token}")
    return EXIT_OK


def _tenant_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    for tenant in endpoints(args).admin().ListTenants(pb.ListTenantsRequest()).tenants:
        print(tenant)
    return EXIT_OK


def _product_add(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    scheme = {"gs1": cpb.SCHEME_GS1, "nmpa": cpb.SCHEME_NMPA, None: cpb.SCHEME_UNSPECIFIED}
    product = cpb.Product(
        gtin=args.gtin or "", nmpa_id=args.nmpa_id or "", scheme=scheme[args.scheme],
        name=args.name, form=args.form or "", strength=args.strength or "",
        pack_size=args.pack_size or 0, approval_number=args.approval_number or "",
    )
    response = endpoints(args).admin().RegisterProduct(
        pb.RegisterProductRequest(tenant=args.tenant, product=product))
    p = response.product
    print(f"product {p.gtin or p.nmpa_id} registered: {p.name} "
          f"({cpb.Scheme.Name(p.scheme).removeprefix('SCHEME_')})")
    return EXIT_OK


def _product_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    stub = endpoints(args).admin()
    token = ""
    while True:
        page = stub.ListProducts(pb.ListProductsRequest(tenant=args.tenant, page_token=token))
        for p in page.products:
            print(f"{p.gtin or '-':14}  {p.nmpa_id or '-':7}  {p.name}")
        token = page.next_page_token
        if not token:
            return EXIT_OK


def _batch_add(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    materials = []
    for spec in args.material or []:
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) not in (3, 4):
            raise CliError("--material takes MATERIAL,SUPPLIER,SUPPLIER_LOT[,QUANTITY]")
        materials.append(cpb.MaterialLot(material=parts[0], supplier=parts[1],
                                         supplier_lot=parts[2],
                                         quantity=parts[3] if len(parts) == 4 else ""))
    batch = cpb.Batch(product=args.product, lot=args.lot, manufactured_on=args.manufactured or "",
                      expires_on=args.expires, materials=materials,
                      authorised_regions=args.region or [])
    response = endpoints(args).admin().AddBatch(pb.AddBatchRequest(tenant=args.tenant,
                                                                     batch=batch))
    print(f"batch {response.batch.lot} of {response.batch.product} added "
          f"(expires {response.batch.expires_on})")
    return EXIT_OK


_PARTY_KINDS = ("plant", "warehouse", "distributor", "pharmacy", "hospital")


def _party_add(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb
    from pharmatrace.v1 import common_pb2 as cpb

    party = cpb.Party(party_id=args.party_id, name=args.name, gln=args.gln or "",
                      region=args.region or "", kind=_PARTY_KINDS.index(args.kind) + 1,
                      authorised_regions=args.authorised_region or [])
    response = endpoints(args).admin().AddParty(pb.AddPartyRequest(tenant=args.tenant,
                                                                    party=party))
    print(f"party {response.party.party_id} added: {response.party.name}")
    return EXIT_OK


# -- codes ---------------------------------------------------------------------------------------


_LEVELS = ("unit", "bundle", "case", "pallet")


def _codes_request(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as apb
    from pharmatrace.v1 import issuance_pb2 as pb

    from tracecore.codes import Code, Form, Scan, Scheme, render
    from tracecore.errors import TraceError

    services = endpoints(args)
    expiry = None
    if args.lot:
        batch = services.admin().GetBatch(
            apb.GetBatchRequest(tenant=args.tenant, product=args.product, lot=args.lot)).batch
        expiry = batch.expires_on[2:4] + batch.expires_on[5:7] + batch.expires_on[8:10]
    form = Form(args.format)
    request = pb.RequestCodesRequest(
        tenant=args.tenant, product=args.product, lot=args.lot or "",
        level=_LEVELS.index(args.level) + 1, count=args.count, request_id=args.request_id,
    )
    progress = _Progress(args.count, enabled=sys.stderr.isatty() and not args.quiet)
    received = 0
    with _output(args.out) as out:
        for chunk in services.issuance().RequestCodes(request):
            scheme = Scheme(chunk.scheme)
            lines = []
            for serial in chunk.serials:
                code = Code(scheme, chunk.product, serial)
                try:
                    lines.append(render(Scan(code, args.lot or None, expiry), form,
                                        host=args.host))
                except TraceError as exc:
                    raise CliError(f"cannot render as {form.value}: {exc}") from exc
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

    codes = list(_inputs(args.codes, args.file))
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
    print(json.dumps(json_format.MessageToDict(pool), indent=2, ensure_ascii=False))
    return EXIT_OK


# -- verify --------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from google.protobuf import json_format
    from pharmatrace.v1 import common_pb2 as cpb
    from pharmatrace.v1 import verification_pb2 as pb

    codes = list(_inputs(args.codes, args.file))
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


# -- security ------------------------------------------------------------------------------------


_ROLES = ("admin", "line", "distributor", "pharmacy", "regulator", "public")


def _token_create(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    expires = int((time.time() + args.expires_days * 86_400) * 1000) if args.expires_days else 0
    response = endpoints(args).admin().CreateToken(pb.CreateTokenRequest(
        tenant=args.tenant, role=_ROLES.index(args.role) + 1, party_id=args.party or "",
        label=args.label or "", expires_at_ms=expires))
    print(f"credential {response.credential.credential_id} ({args.role})", file=sys.stderr)
    print(response.token)
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    for c in endpoints(args).admin().ListTokens(pb.ListTokensRequest(tenant=args.tenant)
                                                ).credentials:
        role = pb.Role.Name(c.role).removeprefix("ROLE_").lower()
        state = "revoked" if c.revoked else (
            "expired" if c.expires_at_ms and c.expires_at_ms < time.time() * 1000 else "active")
        print(f"{c.credential_id:24} {role:12} {state:8} {c.party_id or '-':12} "
              f"{c.certificate_cn or ''} {c.label}")
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    endpoints(args).admin().RevokeToken(pb.RevokeTokenRequest(
        tenant=args.tenant, credential_id=args.credential_id))
    print(f"credential {args.credential_id} revoked")
    return EXIT_OK


def _keys(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    admin = endpoints(args).admin()
    if args.action == "list":
        for k in admin.ListKeys(pb.ListKeysRequest(tenant=args.tenant)).keys:
            print(f"key {k.key_id:4}  {k.state:8}  since "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(k.changed_at_ms / 1000))}")
        return EXIT_OK
    if args.action == "rotate":
        response = admin.RotateKey(pb.RotateKeyRequest(tenant=args.tenant))
    else:
        if args.key_id is None:
            raise CliError(f"keys {args.action} needs a key id")
        call = admin.RetireKey if args.action == "retire" else admin.RevokeKey
        response = call(pb.KeyRequest(tenant=args.tenant, key_id=args.key_id))
    print(f"key {response.changed.key_id} is {response.changed.state}; "
          f"active key {response.active_key_id}")
    return EXIT_OK


def _certs_init(args: argparse.Namespace) -> int:
    from tracecore.errors import TraceError
    from tracerpc.certs import init_dev_pki

    try:
        pki = init_dev_pki(Path(args.directory), hosts=args.host or ("localhost", "127.0.0.1",
                                                                        "::1"),
                           clients=args.client or ("line-1",), overwrite=args.force)
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    print(f"development CA, server and client certificates in {args.directory}:")
    print(f"  serve --tls-cert {pki.server} --tls-key {pki.server_key} [--client-ca {pki.ca}]")
    for client in pki.clients:
        print(f"  client {client.name}: --ca {pki.ca} --cert {client.certificate} "
              f"--key {client.key}")
    return EXIT_OK


def _operator_token(args: argparse.Namespace) -> int:
    from tracecore.clock import now_ms
    from tracecore.credentials import Role
    from tracecore.keys import KeySource
    from tracecore.ledger.tenants import DataDir

    data = DataDir(Path(args.data), KeySource.dev())  # the operator store holds no signing keys
    try:
        credential, token = data.operator().create_token(Role.OPERATOR, "", args.label or "",
                                                         0, now_ms())
    finally:
        data.close()
    print(f"operator credential {credential.credential_id}", file=sys.stderr)
    print(token)
    return EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    from tracecore.errors import TraceError
    from tracecore.keys import KeySource
    from tracecore.ledger.access import Access
    from tracecore.ledger.journal import Journal
    from tracecore.ledger.tenants import LEDGER, OPERATOR_DIR, DataDir

    data = DataDir(Path(args.data), KeySource.dev(), readonly=True)  # no key ring is opened
    ok = True
    for name in [args.tenant] if args.tenant else data.names():
        try:
            ledger = data.open_ledger(name)
        except TraceError as exc:
            raise CliError(str(exc)) from exc
        try:
            audit_checked, audit_bad = Access(ledger).verify_audit()
            with ledger.env.read() as txn:
                events_checked, events_bad = Journal(ledger.db).verify(txn)
        finally:
            ledger.close()
        for what, checked, bad in (("audit trail", audit_checked, audit_bad),
                                   ("event journal", events_checked, events_bad)):
            if bad is None:
                print(f"{name}: {what}: {checked} records, chain intact")
            else:
                ok = False
                print(f"{name}: {what}: BROKEN at record {bad} "
                      f"({checked} records before it verify)")
    if not args.tenant and (Path(args.data) / OPERATOR_DIR / LEDGER / "data.mdb").exists():
        checked, bad = data.operator().verify_audit()
        data.close()
        if bad is None:
            print(f"operator: audit trail: {checked} records, chain intact")
        else:
            ok = False
            print(f"operator: audit trail: BROKEN at record {bad} "
                  f"({checked} records before it verify)")
    return EXIT_OK if ok else EXIT_ERROR


# -- EPCIS ---------------------------------------------------------------------------------------


def _epcis_export(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import trace_pb2 as pb

    response = endpoints(args).trace().ExportEpcis(pb.ExportEpcisRequest(
        tenant=args.tenant, product=args.product or "", lot=args.lot or "",
        party_id=args.party or "", from_ms=_epoch_ms(args.since), to_ms=_epoch_ms(args.until),
        epc_form=(pb.EPC_FORM_DIGITAL_LINK if args.form == "digital-link"
                  else pb.EPC_FORM_EPC_URI),
        company_prefix_length=args.company_prefix_length, max_events=args.max_events or 0))
    with _output(args.out) as out:
        out.write(json.dumps(json.loads(response.document), indent=2, ensure_ascii=False) + "\n")
    print(f"{response.event_count:,} events exported"
          + (" (more matched: narrow the filter)" if response.truncated else ""),
          file=sys.stderr)
    return EXIT_OK


def _epcis_import(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import lifecycle_pb2 as pb

    document = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    response = endpoints(args).lifecycle().ImportEpcis(pb.ImportEpcisRequest(
        tenant=args.tenant, document=document, best_effort=args.best_effort))
    print(f"{response.events:,} events: {response.recorded:,} recorded, "
          f"{response.duplicates:,} already recorded, {response.changed:,} codes changed")
    for note in response.notes:
        print(f"note: {note}")
    for failure in response.failures:
        print(f"not applied: event {failure.event_index}: {failure.code}: {failure.reason}",
              file=sys.stderr)
    return EXIT_OK if not response.failures else EXIT_ERROR


def _epoch_ms(text: str | None) -> int:
    """An ISO date or date-time (UTC unless it says otherwise) as epoch milliseconds."""
    if not text:
        return 0
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"not an ISO date or date-time: {text}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


# -- demo ----------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from pharmatrace_cli.demo import run_demo

    run_demo(endpoints(args), args.tenant, print)
    return EXIT_OK


# -- helpers -------------------------------------------------------------------------------------


def _inputs(codes: Iterable[str], file: str | None) -> Iterator[str]:
    yield from codes
    if file:
        with (sys.stdin if file == "-" else open(file, encoding="utf-8")) as f:
            for line in f:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line


class _output:
    """The --out file (written whole, then renamed, so a cut stream leaves no half file) or
    standard output."""

    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path and path != "-" else None
        self._file: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self._path is None:
            return sys.stdout
        self._file = open(self._path.with_name(self._path.name + ".part"), "w",
                          encoding="utf-8")
        return self._file

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._file is None or self._path is None:
            return
        self._file.close()
        part = self._path.with_name(self._path.name + ".part")
        if exc_type is None:
            part.replace(self._path)


class _Progress:
    def __init__(self, total: int, *, enabled: bool) -> None:
        self._total = total
        self._enabled = enabled
        self._started = time.monotonic()

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        width = 30
        filled = int(width * done / max(1, self._total))
        rate = done / max(1e-9, time.monotonic() - self._started)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self._total:,}"
                         f" codes  {rate:,.0f}/s")
        sys.stderr.flush()

    def done(self) -> None:
        if self._enabled:
            sys.stderr.write("\n")


# -- the parser ----------------------------------------------------------------------------------


def add_command(group: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int],
                *, client: bool = True, tenant: bool = True) -> argparse.ArgumentParser:
    """A subcommand; client commands get the address, TLS and tenant options."""
    sub: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(run=run)
    if client:
        sub.add_argument("--issue-addr", help="issuance service (default "
                         "$PHARMATRACE_ISSUE_ADDR or 127.0.0.1:50051)")
        sub.add_argument("--verify-addr", help="verification service (default "
                         "$PHARMATRACE_VERIFY_ADDR or 127.0.0.1:50052)")
        sub.add_argument("--ca", help="CA certificate (PEM) to verify the servers; "
                         "without it the connection is plaintext")
        sub.add_argument("--cert", help="client certificate (PEM) for mutual TLS")
        sub.add_argument("--key", help="client private key (PEM) for mutual TLS")
        sub.add_argument("--token-file",
                         help="file holding the API token (default $PHARMATRACE_TOKEN)")
    if tenant:
        sub.add_argument("--tenant", default=os.environ.get("PHARMATRACE_TENANT", "demo"),
                         help="tenant (default $PHARMATRACE_TENANT or 'demo')")
    return sub


def endpoints(args: argparse.Namespace) -> Any:
    """The services' addresses and TLS settings from a client command's options."""
    from pharmatrace_cli.client import Endpoints

    return Endpoints.resolve(args.issue_addr, args.verify_addr, _path(args.ca),
                             _path(args.cert), _path(args.key), _path(args.token_file))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pharmatrace",
        description="Drug pack serialization and traceability: one item, one code.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = add_command(commands, "serve", "Run the issuance and verification services.", _serve,
                    client=False, tenant=False)
    serve.add_argument("--data", default="./data", help="data directory (default ./data)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--issue-port", type=int, default=50051)
    serve.add_argument("--verify-port", type=int, default=50052)
    serve.add_argument("--metrics-port", type=int, default=9464)
    serve.add_argument("--workers", type=int, default=0,
                       help="verification worker processes (default: number of cores)")
    serve.add_argument("--dev", action="store_true",
                       help="development: public development key passphrase, a demo tenant, "
                       "and NO authentication")
    serve.add_argument("--public-verify", action="store_true",
                       help="answer Verify without a credential (the public role), rate-limited")
    serve.add_argument("--public-rate", type=float, default=10.0,
                       help="public verifications per second per client (default 10)")
    serve.add_argument("--insecure", action="store_true", help="serve plaintext, without TLS")
    serve.add_argument("--tls-cert", help="server certificate chain (PEM)")
    serve.add_argument("--tls-key", help="server private key (PEM)")
    serve.add_argument("--client-ca", help="require client certificates signed by this CA")
    serve.add_argument("--grace", type=float, default=10.0,
                       help="seconds calls in flight get to finish on shutdown")
    serve.add_argument("--ready-file", help="write the bound ports here as JSON once serving")
    serve.add_argument("--nats", default="", help="NATS server URL: publish every committed "
                       "change of every tenant to its JetStream stream (replication)")
    serve.add_argument("--replicated-commit", action="store_true", help="with --nats: answer "
                       "a write only once the stream has acknowledged it")

    tenant = commands.add_parser("tenant", help="Create and list tenants.").add_subparsers(
        metavar="ACTION")
    create = add_command(tenant, "create", "Create a tenant: its own ledger and signing keys.",
                     _tenant_create, tenant=False)
    create.add_argument("tenant_id")
    create.add_argument("--name")
    add_command(tenant, "list", "List tenants.", _tenant_list, tenant=False)

    product = commands.add_parser("product", help="Register and list products.").add_subparsers(
        metavar="ACTION")
    add = add_command(product, "add", "Register a product.", _product_add)
    add.add_argument("--gtin")
    add.add_argument("--nmpa-id", help="7-digit NMPA drug identifier (药品标识码)")
    add.add_argument("--scheme", choices=("gs1", "nmpa"),
                     help="code scheme (default: gs1 if --gtin is given)")
    add.add_argument("--name", required=True)
    add.add_argument("--form")
    add.add_argument("--strength")
    add.add_argument("--pack-size", type=int)
    add.add_argument("--approval-number")
    add_command(product, "list", "List products.", _product_list)

    batch = commands.add_parser("batch", help="Add batches.").add_subparsers(metavar="ACTION")
    badd = add_command(batch, "add", "Add a production batch (lot) of a product.", _batch_add)
    badd.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    badd.add_argument("--lot", required=True)
    badd.add_argument("--expires", required=True, help="YYYY-MM-DD")
    badd.add_argument("--manufactured", help="YYYY-MM-DD")
    badd.add_argument("--material", action="append",
                      help="MATERIAL,SUPPLIER,SUPPLIER_LOT[,QUANTITY] (repeatable)")
    badd.add_argument("--region", action="append",
                      help="authorised sales region, GB/T 2260 prefix (repeatable)")

    party = commands.add_parser("party", help="Add parties.").add_subparsers(metavar="ACTION")
    padd = add_command(party, "add", "Add a party: a site that holds packs.", _party_add)
    padd.add_argument("--id", dest="party_id", required=True)
    padd.add_argument("--name", required=True)
    padd.add_argument("--kind", choices=_PARTY_KINDS, required=True)
    padd.add_argument("--region", help="GB/T 2260 six-digit code")
    padd.add_argument("--gln")
    padd.add_argument("--authorised-region", action="append",
                      help="GB/T 2260 prefix it may sell into (repeatable)")

    codes = commands.add_parser("codes", help="Request and return code pools.").add_subparsers(
        metavar="ACTION")
    req = add_command(codes, "request", "Request a pool of codes for a packaging line.",
                  _codes_request)
    req.add_argument("--product", required=True, help="GTIN or NMPA drug identifier")
    req.add_argument("--count", type=int, required=True)
    req.add_argument("--request-id", required=True,
                     help="idempotency key: repeat it to resume an interrupted request")
    req.add_argument("--lot", help="bind the pool to this batch (printed lot and expiry)")
    req.add_argument("--level", choices=_LEVELS, default="unit")
    req.add_argument("--format", choices=("hri", "element", "digital-link", "nmpa20"),
                     default="hri")
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
    show = add_command(pool, "show", "Show a pool's parameters and counts.", _pool_show)
    show.add_argument("--request-id", required=True)

    verify = add_command(commands, "verify", "Verify codes: genuine, status, alerts.", _verify)
    verify.add_argument("codes", nargs="*")
    verify.add_argument("--file", help="file with one code per line ('-' for stdin)")
    verify.add_argument("--json", action="store_true", help="one JSON object per line")
    verify.add_argument("--region", help="scanner's GB/T 2260 region")
    verify.add_argument("--party", help="scanner's party id")

    token = commands.add_parser("token", help="API tokens of a tenant.").add_subparsers(
        metavar="ACTION")
    tcreate = add_command(token, "create", "Create an API token (printed once).", _token_create)
    tcreate.add_argument("--role", choices=_ROLES, required=True)
    tcreate.add_argument("--party", help="the party the credential acts for")
    tcreate.add_argument("--label")
    tcreate.add_argument("--expires-days", type=int)
    add_command(token, "list", "List credentials.", _token_list)
    trevoke = add_command(token, "revoke", "Revoke a credential.", _token_revoke)
    trevoke.add_argument("credential_id")

    keys = add_command(commands, "keys", "Signing keys: list, rotate, retire, revoke.", _keys)
    keys.add_argument("action", choices=("list", "rotate", "retire", "revoke"))
    keys.add_argument("key_id", type=int, nargs="?")

    certs = commands.add_parser("certs", help="Development TLS certificates.").add_subparsers(
        metavar="ACTION")
    cinit = add_command(certs, "init", "Create a development CA, server and client "
                        "certificates.", _certs_init, client=False, tenant=False)
    cinit.add_argument("directory")
    cinit.add_argument("--host", action="append", help="server name or address (repeatable)")
    cinit.add_argument("--client", action="append", help="client certificate name (repeatable)")
    cinit.add_argument("--force", action="store_true", help="overwrite existing files")

    operator = commands.add_parser("operator", help="The platform operator.").add_subparsers(
        metavar="ACTION")
    otoken = add_command(operator, "token", "Create an operator token (creates tenants) in a "
                         "data directory; printed once.", _operator_token, client=False,
                         tenant=False)
    otoken.add_argument("--data", default="./data")
    otoken.add_argument("--label")

    audit = commands.add_parser("audit", help="The audit trail.").add_subparsers(
        metavar="ACTION")
    averify = add_command(audit, "verify", "Check the hash chains of the audit trail and event "
                          "journal; name the first bad record.", _audit_verify, client=False,
                          tenant=False)
    averify.add_argument("--data", default="./data")
    averify.add_argument("--tenant", help="one tenant (default: all)")

    epcis = commands.add_parser("epcis", help="GS1 EPCIS 2.0 exchange.").add_subparsers(
        metavar="ACTION")
    export = add_command(epcis, "export", "Export events as an EPCIS 2.0 JSON-LD document.",
                         _epcis_export)
    export.add_argument("--product")
    export.add_argument("--lot")
    export.add_argument("--party")
    export.add_argument("--since", help="ISO date or date-time (inclusive)")
    export.add_argument("--until", help="ISO date or date-time (exclusive)")
    export.add_argument("--form", choices=("epc", "digital-link"), default="epc",
                        help="EPCs as SGTIN URNs or GS1 Digital Link URIs")
    export.add_argument("--company-prefix-length", type=int, default=7)
    export.add_argument("--max-events", type=int)
    export.add_argument("--out", help="file to write (default stdout)")
    eimport = add_command(epcis, "import", "Apply a partner's EPCIS 2.0 document.",
                          _epcis_import)
    eimport.add_argument("file", help="JSON file ('-' for stdin)")
    eimport.add_argument("--best-effort", action="store_true",
                         help="apply the codes that pass, report the others")

    add_command(commands, "demo", "Run a short scenario against running services.", _demo)
    from pharmatrace_cli import ops, oversight, replication

    oversight.register(commands)
    ops.register(commands)
    replication.register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
