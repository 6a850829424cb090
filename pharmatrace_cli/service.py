"""Running and upgrading the service: `serve` (flags over a TOML file), `config check / show`,
`tenant migrate` and `health`. ``register`` adds them to the `pharmatrace` parser."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import EXIT_ERROR, EXIT_OK, CliError, add_command, endpoints
from pharmatrace_cli.config import (
    ConfigError,
    Settings,
    environ_max_map_size,
    key_environment,
    key_origin,
    merge,
    parse_size,
    read_file,
)

#: Settings that are switches on the command line.
_SWITCHES = ("dev", "public_verify", "insecure", "migrate", "replicated_commit")


def register(commands: Any, tenant: Any) -> None:
    """Adds serve, config, tenant migrate and health; ``tenant`` is the `tenant` group."""
    serve = add_command(commands, "serve", "Run the issuance and verification services.",
                        _serve, client=False, tenant=False)
    _serve_options(serve)

    config = commands.add_parser("config", help="Check and show `serve`'s settings."
                                 ).add_subparsers(metavar="ACTION")
    check = add_command(config, "check", "Check a configuration file: every key known, every "
                        "value of its type, the combination valid; names the first bad key.",
                        _config_check, client=False, tenant=False)
    check.add_argument("file", help="TOML configuration file")
    show = add_command(config, "show", "Show the settings `serve` would run with, given the "
                       "same file and options: every value, secrets masked.", _config_show,
                       client=False, tenant=False)
    _serve_options(show)

    migrate = add_command(tenant, "migrate", "Bring ledgers to this release's format: one "
                          "tenant at a time, offline while it runs, after a backup (restored "
                          "if a step fails); the other tenants keep being served. Resumes a "
                          "migration that was cut.", _tenant_migrate, client=False, tenant=False)
    migrate.add_argument("--data", default="./data", help="data directory (default ./data)")
    migrate.add_argument("--tenant", action="append",
                         help="migrate only this tenant (repeatable; default: every tenant "
                         "that needs it, and the operator store if no server has it open)")
    migrate.add_argument("--list", action="store_true",
                         help="only print every ledger's format version")
    migrate.add_argument("--dev", action="store_true",
                         help="the public development key passphrase, as `serve --dev` (else "
                         "PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE: the ledger's "
                         "codes are encrypted under a key derived from it)")

    health = add_command(commands, "health", "Ask both services' gRPC health service "
                         "whether they serve; exits 1 when one does not.", _health,
                         tenant=False)
    health.add_argument("--timeout", type=float, default=5.0, help="seconds per service")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    """`serve`'s options. Every default is None, so that a setting not given on the command
    line comes from --config, else from Settings."""
    d = Settings()
    parser.add_argument("--config", help="TOML file with these settings (keys: the options' "
                        "long names with _ for -); options given here win over it")
    parser.add_argument("--data", help=f"data directory (default {d.data})")
    parser.add_argument("--host", help=f"address to listen on (default {d.host})")
    parser.add_argument("--issue-port", type=int, help=f"default {d.issue_port}")
    parser.add_argument("--verify-port", type=int, help=f"default {d.verify_port}")
    parser.add_argument("--metrics-port", type=int, help=f"default {d.metrics_port}")
    parser.add_argument("--workers", type=int,
                        help="verification worker processes (default: number of cores)")
    parser.add_argument("--dev", action="store_true", default=None,
                        help="development: public development key passphrase, a demo tenant, "
                        "and NO authentication")
    parser.add_argument("--public-verify", action="store_true", default=None,
                        help="answer Verify without a credential (the public role), rate-limited")
    parser.add_argument("--public-rate", type=float,
                        help=f"public verifications per second per client (default "
                        f"{d.public_rate:g})")
    parser.add_argument("--public-port", type=int,
                        help="with --client-ca: a verification port without client "
                        "certificates, for public verification and token holders")
    parser.add_argument("--max-import-mib", type=int,
                        help=f"largest EPCIS document one import may send, in MiB (default "
                        f"{d.max_import_mib})")
    parser.add_argument("--default-time-zone", metavar="ZONE",
                        help="IANA time zone of a tenant created without --tz: where its days "
                        f"begin in reports and date filters (default {d.default_time_zone})")
    parser.add_argument("--insecure", action="store_true", default=None,
                        help="serve plaintext, without TLS")
    parser.add_argument("--tls-cert", help="server certificate chain (PEM)")
    parser.add_argument("--tls-key", help="server private key (PEM)")
    parser.add_argument("--client-ca", help="require client certificates signed by this CA")
    parser.add_argument("--grace", type=float,
                        help=f"seconds calls in flight get to finish on shutdown (default "
                        f"{d.grace:g})")
    parser.add_argument("--ready-file", help="write the bound ports here as JSON once serving")
    parser.add_argument("--metrics-host",
                        help=f"address of the plaintext metrics endpoint (default "
                        f"{d.metrics_host}: it names tenants; put a TLS proxy in front to expose "
                        "it)")
    parser.add_argument("--nats", help="NATS server URL: publish every committed change of "
                        "every tenant to its JetStream stream (replication)")
    parser.add_argument("--replicated-commit", action="store_true", default=None,
                        help="with --nats: answer a write only once the stream has it")
    parser.add_argument("--http-port", type=int,
                        help=f"the HTTP front door: resolver, check page, LVMS (default "
                        f"{d.http_port}; -1: none)")
    parser.add_argument("--public-base-url",
                        help="scheme, host and path of the links it prints, e.g. "
                        "https://id.example.com (default: the address each request came to)")
    parser.add_argument("--max-map-size", type=_size,
                        help="bytes each tenant's ledger may grow to: 512MiB, 64GiB, 4TiB")
    parser.add_argument("--key-file", help="file holding the key-encryption key")
    parser.add_argument("--key-passphrase-file",
                        help="file holding the key-encryption passphrase")
    parser.add_argument("--migrate", action="store_true", default=None,
                        help="bring older ledgers to this release's format at start")
    parser.add_argument("--clone-max-scans", type=int,
                        help="a code verified more often than this is suspected cloned "
                        "(default 20)")
    parser.add_argument("--clone-max-speed-kmh", type=float,
                        help="two scans further apart than this speed allows: a clone "
                        "(default 1000)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def settings_of(args: argparse.Namespace) -> Settings:
    """The file named by --config (if any) under the options given; CliError when wrong."""
    flags: dict[str, Any] = {}
    for name in Settings.__dataclass_fields__:
        value = getattr(args, name, None)
        flags[name] = Path(value) if name in _PATHS and value is not None else value
    try:
        from_file = read_file(Path(args.config)) if args.config else {}
        return merge(from_file, flags)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


_PATHS = frozenset({"data", "tls_cert", "tls_key", "client_ca", "ready_file", "key_file",
                    "key_passphrase_file"})


def _serve(args: argparse.Namespace) -> int:
    from pharmatrace_cli.serve import ServeConfig, prepare_metrics_dir, serve

    settings = settings_of(args)
    try:
        os.environ.update(key_environment(settings, os.environ))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    # Read by the verification workers and the logging set-up, in every process serve starts.
    os.environ.update(settings.environment())
    data = settings.data
    from tracecore.files import make_private

    # Whatever the caller's umask: the data directory holds every issued serial and key ring.
    os.umask(0o077)
    data.mkdir(parents=True, exist_ok=True)
    make_private(data)
    metrics_dir = prepare_metrics_dir(data)
    from tracerpc.logs import configure_logging

    configure_logging()
    if settings.migrate:
        _migrate(data, None, dev=settings.dev, print_to=sys.stderr)
    else:
        _warn_of_old_formats(data)
    config = ServeConfig(
        data=data, host=settings.host, issue_port=settings.issue_port,
        verify_port=settings.verify_port, metrics_port=settings.metrics_port,
        workers=settings.workers or os.cpu_count() or 1, dev=settings.dev,
        tls_cert=settings.tls_cert, tls_key=settings.tls_key, client_ca=settings.client_ca,
        grace_s=settings.grace, ready_file=settings.ready_file,
        authenticate=not settings.dev, public_verify=settings.public_verify,
        public_rate=settings.public_rate, max_map_size=settings.max_map_size,
        http_port=settings.http_port, public_base_url=settings.public_base_url,
        nats=settings.nats, replicated_commit=settings.replicated_commit,
        metrics_host=settings.metrics_host, max_import_bytes=settings.max_import_mib << 20,
        default_time_zone=settings.default_time_zone,
        public_port=settings.public_port,
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
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return EXIT_OK


def _warn_of_old_formats(data: Path) -> None:
    """Names, at start, every ledger this release will not serve because of its format."""
    import logging

    from tracecore.errors import TraceError
    from tracecore.ledger import format as ledger_format
    from tracecore.ledger.upgrade import formats

    log = logging.getLogger("pharmatrace.serve")
    try:
        found = formats(data)
    except TraceError as exc:
        log.error("the ledgers' formats cannot be read: %s", exc)
        return
    for name, version in found.items():
        if version != ledger_format.CURRENT:
            log.error("%s: ledger format %d, this release serves format %d: not served until "
                      "`pharmatrace tenant migrate`%s", name, version, ledger_format.CURRENT,
                      "" if version < ledger_format.CURRENT else " (NEWER: not migratable)")


# -- config --------------------------------------------------------------------------------------


def _config_check(args: argparse.Namespace) -> int:
    try:
        values = read_file(Path(args.file))
        settings = merge(values, {})
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.file}: {len(values)} settings, all valid"
          + ("" if settings.tls_cert else " (plaintext: insecure = true)"))
    return EXIT_OK


def _config_show(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    shown = settings.shown()
    if settings.max_map_size is None:
        try:
            shown["max_map_size"] = environ_max_map_size()
        except ConfigError as exc:
            raise CliError(str(exc)) from None
    shown["key_encryption_key"] = key_origin(settings, os.environ)
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        text = ("(not set)" if value is None else value if isinstance(value, str) and value
                else json.dumps(value))
        print(f"{key:<{width}}  {text}")
    return EXIT_OK


# -- tenant migrate ------------------------------------------------------------------------------


def _tenant_migrate(args: argparse.Namespace) -> int:
    data = Path(args.data)
    if args.list:
        from tracecore.ledger import format as ledger_format
        from tracecore.ledger.upgrade import formats

        for name, version in formats(data).items():
            note = ("current" if version == ledger_format.CURRENT else
                    "NEWER than this release" if version > ledger_format.CURRENT else
                    "needs `pharmatrace tenant migrate`")
            print(f"{name}: format {version} ({note})")
        return EXIT_OK
    return _migrate(data, args.tenant, dev=args.dev, print_to=sys.stdout)


def _migrate(data: Path, tenants: list[str] | None, *, dev: bool, print_to: Any) -> int:
    """Migrates the operator store (unless tenants are named) and the tenants; prints as it
    goes. ``dev``: the development key passphrase, else the one configured."""
    from tracecore.errors import FailedPrecondition, TraceError
    from tracecore.keys import KeySource
    from tracecore.ledger.upgrade import (
        MigrationFailed,
        migrate_operator,
        migrate_tenant,
        pending_tenants,
    )

    def say(line: str) -> None:
        print(line, file=print_to, flush=True)

    failed = 0
    if not tenants:
        try:
            migrate_operator(data, say=say)
        except FailedPrecondition as exc:
            say(f"note: {exc}")
        except TraceError as exc:
            raise CliError(str(exc)) from exc
    names = tenants or pending_tenants(data)
    try:
        keys = KeySource.dev() if dev else KeySource.from_env()
    except TraceError as exc:
        if names:
            raise CliError(str(exc)) from exc
        keys = KeySource.dev()  # nothing to migrate: no key is used
    for name in names:
        try:
            outcome = migrate_tenant(data, name, keys, say=say)
        except MigrationFailed as exc:
            say(f"pharmatrace: {exc}")
            failed += 1
            continue
        except TraceError as exc:
            raise CliError(str(exc)) from exc
        if not outcome.steps:
            say(f"tenant {name}: format {outcome.to_version}, nothing to do")
        else:
            say(f"tenant {name}: migrated from format {outcome.from_version} to "
                f"{outcome.to_version}; the backup stays in {outcome.backup}")
    if not names:
        say("every tenant's ledger is of the current format")
    return EXIT_ERROR if failed else EXIT_OK


# -- health --------------------------------------------------------------------------------------


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    where = endpoints(args)
    worst = EXIT_OK
    for label, address in (("issuance", where.issue), ("verification", where.verify)):
        stub = health_pb2_grpc.HealthStub(where.channel(address))
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=args.timeout)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        except grpc.RpcError as exc:
            status = exc.code().name if isinstance(exc, grpc.Call) else "UNREACHABLE"
        print(f"{label} {address}: {status}")
        if status != "SERVING":
            worst = EXIT_ERROR
    return worst
