"""`pharmatrace serve`: the issuance service, the verification workers and the metrics endpoint."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pharmatrace_cli.command import EXIT_OK, CliError, add_command, optional_path

if TYPE_CHECKING:  # the server's modules load only when `serve` runs
    from tracerpc.certs import Tls

log = logging.getLogger("pharmatrace.serve")

DEMO_TENANT = "demo"
#: The largest a tenant's ledger may grow to, as bytes or with a unit: 512MiB, 64GiB, 4TiB.
MAX_MAP_SIZE_ENV = "PHARMATRACE_MAX_MAP_SIZE"
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1000, "KIB": 1 << 10, "M": 1 << 20, "MB": 10**6,
          "MIB": 1 << 20, "G": 1 << 30, "GB": 10**9, "GIB": 1 << 30, "T": 1 << 40,
          "TB": 10**12, "TIB": 1 << 40}


@dataclass(frozen=True)
class ServeConfig:
    """Everything `serve` needs, read once from the command line and environment."""

    data: Path
    host: str
    issue_port: int
    verify_port: int
    metrics_port: int
    workers: int
    dev: bool
    tls_cert: Path | None
    tls_key: Path | None
    client_ca: Path | None
    grace_s: float
    ready_file: Path | None
    authenticate: bool = True
    public_verify: bool = False
    public_rate: float = 10.0
    max_map_size: int | None = None
    """Per tenant ledger; None: $PHARMATRACE_MAX_MAP_SIZE, else a quarter of the filesystem."""
    metrics_host: str = "127.0.0.1"


def parse_size(text: str) -> int:
    """Bytes from "1048576", "512MiB", "64 GiB", "1.5TB"; ValueError otherwise."""
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGTIB")
    unit = cleaned[len(number):]
    try:
        size = int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        raise ValueError(f"{text!r} is not a size such as 1048576, 512MiB or 64GiB") from None
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


#: Without a configured limit, one tenant's ledger may fill this share of the data filesystem, so
#: that one tenant filling its ledger leaves room for the others and for the service itself.
DEFAULT_DISK_SHARE = 4


def default_max_map_size(data: Path) -> int:
    """A quarter of the data directory's filesystem, at most the ledger's own default."""
    from tracecore.ledger.env import DEFAULT_MAX_MAP_SIZE, disk_free

    _, total = disk_free(data)
    return min(DEFAULT_MAX_MAP_SIZE, max(1 << 20, total // DEFAULT_DISK_SHARE))


def max_map_size(config: ServeConfig) -> int:
    """The size each tenant's ledger may grow to: the config's, else the environment's, else a
    share of the data filesystem."""
    from tracecore.errors import InvalidArgument

    if config.max_map_size is not None:
        return config.max_map_size
    text = os.environ.get(MAX_MAP_SIZE_ENV, "")
    if not text:
        return default_max_map_size(config.data)
    try:
        return parse_size(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc), field=MAX_MAP_SIZE_ENV) from None


#: Memory-backed, so the metrics files never share a disk with the ledgers.
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (a private mkdtemp directory inside it)


def prepare_metrics_dir(data: Path) -> Path:
    """Worker processes share metrics through memory-mapped files; this must run before
    prometheus_client is imported anywhere in this process.

    A write to a mapped file on a full filesystem kills the process with SIGBUS, so the files live
    in shared memory (a new private directory per server), away from the data directory's disk;
    only where there is no /dev/shm do they go beside the data directory.
    """
    shutil.rmtree(data / ".metrics", ignore_errors=True)  # where earlier versions kept them
    parent = SHARED_MEMORY if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK) \
        else None
    directory = Path(tempfile.mkdtemp(prefix="pharmatrace-metrics-", dir=parent))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


async def serve(config: ServeConfig) -> None:
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from codegen_svc import app as codegen_app
    from tracecore.clock import now_ms
    from tracecore.errors import AlreadyExists
    from tracecore.ledger.chain import SEAL_PURPOSE
    from tracecore.ledger.env import DEFAULT_MAX_MAP_SIZE
    from tracerpc.metrics import Metrics
    from verify_svc.workers import WorkerConfig, WorkerPool, key_source

    tls = _tls(config)
    if tls is None:
        log.warning("serving WITHOUT TLS (--insecure): for development on a trusted host only")
    keys = key_source(config.dev)
    if keys.is_development:
        log.warning("using the public DEVELOPMENT key passphrase: never for production data")
    seal_key = await asyncio.to_thread(keys.derived_key, SEAL_PURPOSE)
    metrics = Metrics()
    if not config.authenticate:
        log.warning("authentication is OFF (--dev): every caller may do everything")
    limit = max_map_size(config)
    codegen = await codegen_app.start(
        config.data, keys, f"{config.host}:{config.issue_port}", metrics, tls=tls,
        authenticate=config.authenticate, max_map_size=limit,
    )
    if limit < DEFAULT_MAX_MAP_SIZE:
        log.info("each tenant's ledger may grow to %d bytes", limit)
    if config.dev and DEMO_TENANT not in codegen.data.names():
        with contextlib.suppress(AlreadyExists):
            codegen.data.create(DEMO_TENANT, "Demo Pharma", now_ms())
            log.info("created the development tenant %r", DEMO_TENANT)
    await asyncio.to_thread(_check_tenants, codegen.data)
    pool = WorkerPool(
        WorkerConfig(config.data, config.host, config.verify_port, config.dev, tls,
                     config.grace_s, config.authenticate, config.public_verify,
                     config.public_rate),
        config.workers,
    )
    verify_port = await asyncio.to_thread(pool.start)
    registry = CollectorRegistry()
    # prometheus_client leaves this constructor unannotated.
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics_server, _ = start_http_server(config.metrics_port,
                                          addr=config.metrics_host.strip("[]"),
                                          registry=registry)
    ports = {"issue": codegen.port, "verify": verify_port,
             "metrics": metrics_server.server_port, "pid": os.getpid()}
    if config.ready_file is not None:
        tmp = config.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(config.ready_file)
    log.info("pharmatrace ready: issuance %s:%d, verification %s:%d (%d workers), "
             "metrics %s:%d", config.host, codegen.port, config.host, verify_port, pool.workers,
             config.metrics_host, metrics_server.server_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)
        if not stop.is_set():
            await asyncio.to_thread(pool.respawn_dead)
            _ledger_gauges(codegen.data, metrics)
            await asyncio.to_thread(_seal_chains, codegen.data, seal_key)
    log.info("shutting down: draining calls for up to %.0f s", config.grace_s)
    await asyncio.gather(codegen.stop(config.grace_s),
                         asyncio.to_thread(pool.stop, config.grace_s))
    await asyncio.to_thread(_seal_chains, codegen.data, seal_key)
    metrics_server.shutdown()
    log.info("stopped")


def _check_tenants(data: object) -> None:
    """Opens every tenant once, so that a missing or damaged file shows at start-up, named; the
    tenant's calls fail until it is fixed, and the other tenants are served regardless."""
    from tracecore.ledger.tenants import DataDir

    assert isinstance(data, DataDir)
    for name, problem in data.check_all():
        log.error("tenant %s cannot be served: %s", name, problem)
    for name in data.names():
        reason = data.offline_reason(name)
        if reason is not None:
            log.warning("tenant %s is offline for maintenance%s", name,
                        f": {reason}" if reason else "")


def _seal_chains(data: object, key: bytes) -> None:
    """Renews each tenant's seal over its chain heads (see tracecore.ledger.chain), where they
    moved; a tenant that cannot be written now (offline, disk full) is sealed on a later pass."""
    from functools import partial

    from tracecore.errors import TraceError
    from tracecore.ledger.chain import renew_seal
    from tracecore.ledger.tenants import DataDir

    assert isinstance(data, DataDir)
    for name in data.names():
        try:
            ledger = data.get(name).ledger
            ledger.env.write(partial(renew_seal, dbs=ledger.db, key=key, tenant=name))
        except TraceError:
            continue


def _ledger_gauges(data: object, metrics: object) -> None:
    from tracecore.ledger.env import disk_free
    from tracecore.ledger.tenants import DataDir
    from tracerpc.metrics import Metrics

    assert isinstance(data, DataDir) and isinstance(metrics, Metrics)
    with contextlib.suppress(OSError):
        metrics.disk_free_bytes.set(disk_free(data.root)[0])
    for name in data.names():
        with contextlib.suppress(Exception):
            env = data.get(name).ledger.env
            stat = env.stat()
            metrics.ledger_bytes.labels(name).set(stat["_bytes"])
            metrics.ledger_codes.labels(name).set(stat["codes"])
            metrics.ledger_limit_used.labels(name).set(stat["_bytes"] / env.max_map_size)


def _tls(config: ServeConfig) -> Tls | None:
    from tracerpc.certs import load_tls_files

    if config.tls_cert is None or config.tls_key is None:
        return None
    return load_tls_files(config.tls_cert, config.tls_key, config.client_ca)


# -- the command ---------------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Adds serve to the command group."""
    serve = add_command(commands, "serve", "Run the issuance and verification services.", _serve,
                    client=False, tenant=False)
    serve.add_argument("--data", default="./data", help="data directory (default ./data)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--issue-port", type=int, default=50051)
    serve.add_argument("--verify-port", type=int, default=50052)
    serve.add_argument("--metrics-port", type=int, default=9464)
    serve.add_argument("--metrics-host", default="127.0.0.1",
                       help="address of the plaintext metrics endpoint (default loopback only: "
                       "it names tenants; put a TLS proxy in front to expose it)")
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


def _serve(args: argparse.Namespace) -> int:
    if not args.insecure and not args.tls_cert:
        raise CliError("TLS needs --tls-cert and --tls-key (create development ones with "
                       "`pharmatrace certs init`); or pass --insecure to serve plaintext")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    from tracecore.files import make_private

    # Whatever the caller's umask: the data directory holds every issued serial and key ring.
    os.umask(0o077)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    make_private(data)
    if args.dev and not _loopback(args.host):
        raise CliError(f"--dev turns authentication off, so it serves loopback only, not "
                       f"{args.host}: drop --dev or use --host 127.0.0.1")
    metrics_dir = prepare_metrics_dir(data)
    from tracerpc.logs import configure_logging

    configure_logging()
    config = ServeConfig(
        data=data, host=args.host, issue_port=args.issue_port, verify_port=args.verify_port,
        metrics_port=args.metrics_port, workers=args.workers or os.cpu_count() or 1,
        dev=args.dev, tls_cert=optional_path(args.tls_cert),
        tls_key=optional_path(args.tls_key), client_ca=optional_path(args.client_ca),
        grace_s=args.grace, ready_file=optional_path(args.ready_file),
        authenticate=not args.dev, public_verify=args.public_verify,
        public_rate=args.public_rate, metrics_host=args.metrics_host,
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


def _loopback(host: str) -> bool:
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
