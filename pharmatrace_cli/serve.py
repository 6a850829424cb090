"""`pharmatrace serve`: the issuance service, the verification workers and the metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server's modules load only when `serve` runs
    from codegen_svc.app import Codegen
    from replica_svc.commit_gate import ReplicatedCommit
    from replica_svc.publisher import Replication
    from tracerpc.certs import Tls
    from tracerpc.metrics import Metrics
    from verify_svc.workers import WorkerPool

from pharmatrace_cli.command import (
    StopRequested,
    stop_signals,
    stopped,
    unless_stopped,
    until_signalled,
)
from pharmatrace_cli.config import listening_ports, parse_size
from tracecore.errors import FailedPrecondition

log = logging.getLogger("pharmatrace.serve")

DEMO_TENANT = "demo"
#: Largest EPCIS document one import may send, unless configured (max_import_mib).
DEFAULT_IMPORT_BYTES = 16 << 20
#: How long a stopping node waits for the stream to take its last commits.
_DRAIN_S = 5.0
#: The largest a tenant's ledger may grow to, as bytes or with a unit: 512MiB, 64GiB, 4TiB.
MAX_MAP_SIZE_ENV = "PHARMATRACE_MAX_MAP_SIZE"


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
    http_port: int = 8080
    """The HTTP front door, served by the verification workers; 0: any free port; below 0:
    none."""
    public_base_url: str = ""
    nats: str = ""
    """NATS server URL: every committed change of every tenant is published to JetStream."""
    replicated_commit: bool = False
    """Answer a write only once the stream has acknowledged it (needs ``nats``)."""
    metrics_host: str = "127.0.0.1"
    max_import_bytes: int = DEFAULT_IMPORT_BYTES
    """Largest EPCIS document one import may send."""
    default_time_zone: str = "UTC"
    """IANA zone of a tenant created without one."""
    public_port: int = -1
    """With mutual TLS, verification without client certificates here; below 0: none."""



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
    """Serves until SIGTERM or SIGINT, holding the claim of its ports throughout. A stop asked
    for while it is still starting stops what has started, the same way."""
    claims = claim_ports(listening_ports(config))
    try:
        stop = stop_signals()
        try:
            await _serve(config, stop)
        except StopRequested:
            log.info("stopped before it was ready")
    finally:
        for claim in claims:
            claim.close()


@dataclass
class _Started:
    """What `serve` has started so far, stopped in order whenever it ends: its calls drained,
    the last seal written while the ledgers are open and their changes still captured (so the
    replicas receive it and the next start continues the same epoch), the stream drained, the
    ledgers closed."""

    codegen: Codegen
    seal_key: bytes
    pool: WorkerPool | None = None
    replication: Replication | None = None
    metrics_server: Any = None
    """prometheus_client's (its type is not exported)."""
    ready: bool = False

    async def stop(self, grace_s: float) -> None:
        if self.ready:
            log.info("shutting down: draining calls for up to %.0f s", grace_s)
        quiesced = [self.codegen.quiesce(grace_s)]
        if self.pool is not None:
            quiesced.append(asyncio.to_thread(self.pool.stop, grace_s))
        await asyncio.gather(*quiesced)
        if self.ready:
            await asyncio.to_thread(_seal_chains, self.codegen.data, self.seal_key)
        if self.replication is not None:
            await self.replication.drain(_DRAIN_S)
            await self.replication.stop()
        self.codegen.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()


async def _serve(config: ServeConfig, stop: asyncio.Event) -> None:
    from codegen_svc import app as codegen_app
    from tracecore.ledger.chain import SEAL_PURPOSE
    from tracecore.version import LEDGER_FORMAT, release
    from tracerpc.metrics import Metrics
    from tracerpc.server import PortUnavailable
    from verify_svc.workers import key_source

    tls = _tls(config)
    if tls is None:
        log.warning("serving WITHOUT TLS (--insecure): for development on a trusted host only")
    keys = key_source(config.dev)
    if keys.is_development:
        log.warning("using the public DEVELOPMENT key passphrase: never for production data")
    seal_key = await asyncio.to_thread(keys.derived_key, SEAL_PURPOSE)
    stopped(stop)
    metrics = Metrics()
    metrics.build_info.labels(release(), str(LEDGER_FORMAT)).set(1)
    log.info("pharmatrace %s, ledger format %d", release(), LEDGER_FORMAT)
    if not config.authenticate:
        log.warning("authentication is OFF (--dev): every caller may do everything")
    limit = max_map_size(config)
    gates = []
    if config.nats and config.replicated_commit:
        from replica_svc.commit_gate import ReplicatedCommit

        gates.append(ReplicatedCommit())
    try:
        codegen = await codegen_app.start(
            config.data, keys, f"{config.host}:{config.issue_port}", metrics, tls=tls,
            authenticate=config.authenticate, max_map_size=limit, interceptors=gates,
            max_import_bytes=config.max_import_bytes,
            default_time_zone=config.default_time_zone,
        )
    except PortUnavailable:
        # Taken, since the claim, by a program that is not a pharmatrace server.
        raise port_in_use("issue_port", config.host, config.issue_port) from None
    started = _Started(codegen, seal_key)
    try:
        await _serve_started(config, stop, started, metrics, tls, limit, gates)
    finally:
        await started.stop(config.grace_s)
    log.info("stopped")


async def _serve_started(config: ServeConfig, stop: asyncio.Event, started: _Started,
                         metrics: Metrics, tls: Tls | None, limit: int,
                         gates: list[ReplicatedCommit]) -> None:
    """The rest of `serve` once the issuance service runs: each part it starts is noted in
    ``started``, then it serves until ``stop``."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from tracecore.clock import now_ms
    from tracecore.errors import AlreadyExists
    from tracecore.ledger.env import DEFAULT_MAX_MAP_SIZE
    from verify_svc.workers import WorkerConfig, WorkerPool

    codegen = started.codegen
    if limit < DEFAULT_MAX_MAP_SIZE:
        log.info("each tenant's ledger may grow to %d bytes", limit)
    if config.dev and DEMO_TENANT not in codegen.data.names():
        with contextlib.suppress(AlreadyExists):
            codegen.data.create(DEMO_TENANT, "Demo Pharma", now_ms())
            log.info("created the development tenant %r", DEMO_TENANT)
    if tls is not None and tls.client_ca is not None:
        await _refuse_cn_bindings(codegen)
    await asyncio.to_thread(_check_tenants, codegen.data)
    stopped(stop)
    replication = None
    if config.nats:
        from replica_svc.publisher import Replication

        replication = started.replication = await unless_stopped(
            stop, Replication.start(config.nats, codegen.data))
        for gate in gates:
            gate.replication = replication
    pool = started.pool = WorkerPool(
        WorkerConfig(config.data, config.host, config.verify_port, config.dev, tls,
                     config.grace_s, config.authenticate, config.public_verify,
                     config.public_rate,
                     http_port=config.http_port if config.http_port >= 0 else None,
                     public_base_url=config.public_base_url,
                     max_import_bytes=config.max_import_bytes,
                     http_tls=(config.tls_cert, config.tls_key)
                     if config.tls_cert is not None and config.tls_key is not None else None,
                     public_port=config.public_port
                     if config.public_port >= 0 and config.client_ca is not None else None,
                     nats=config.nats),
        config.workers,
    )
    verify_port = await asyncio.to_thread(pool.start)
    stopped(stop)
    if replication is not None:
        await unless_stopped(stop, replication.announce(
            f"{config.host}:{codegen.port}", f"{config.host}:{verify_port}",
            front_door_url(config.public_base_url, config.host, pool.http_port, tls is not None)))
    registry = CollectorRegistry()
    # prometheus_client leaves this constructor unannotated.
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    metrics_server, _ = start_http_server(config.metrics_port,
                                          addr=config.metrics_host.strip("[]"),
                                          registry=registry)
    started.metrics_server = metrics_server
    ports = {"issue": codegen.port, "verify": verify_port,
             "metrics": metrics_server.server_port, "pid": os.getpid()}
    if pool.http_port is not None:
        ports["http"] = pool.http_port
    if pool.public_port is not None:
        ports["public"] = pool.public_port
    if config.ready_file is not None:
        tmp = config.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(config.ready_file)
    started.ready = True
    log.info("pharmatrace ready: issuance %s:%d, verification %s:%d (%d workers), metrics %s:%d%s",
             config.host, codegen.port, config.host, verify_port, pool.workers,
             config.metrics_host, metrics_server.server_port,
             f", HTTP front door {'https' if tls else 'http'}://{config.host}:{pool.http_port}"
             if pool.http_port is not None else "")

    async def upkeep() -> None:
        await asyncio.to_thread(pool.respawn_dead)
        _ledger_gauges(codegen.data, metrics)
        await asyncio.to_thread(_seal_chains, codegen.data, started.seal_key)

    await until_signalled(stop, upkeep)


def front_door_url(public_base_url: str, host: str, port: int | None, tls: bool) -> str:
    """Where other nodes send a check for a code of this node's tenants: the configured public
    base URL, else the front door's own address ("" without a front door)."""
    if port is None:
        return ""
    if public_base_url:
        return public_base_url.rstrip("/")
    return f"{'https' if tls else 'http'}://{host}:{port}"


#: The abstract socket (Linux; scoped, as ports are, to the network namespace) a serving process
#: (`serve`, `replica`) holds for each port number it serves; the kernel lets one process bind a
#: name at a time and frees it when the process ends, however it ends.
_CLAIM_NAME = "\0pharmatrace-port-{port}"


def claim_ports(ports: Iterable[tuple[str, str, int]]) -> list[socket.socket]:
    """Claims every port given by number ((setting, host, port), as ``listening_ports`` lists
    those of `serve`), which must be free, for as long as the returned sockets are open. The
    verification workers open theirs with SO_REUSEPORT, so that all of them share it: another
    server's workers on the same port would be handed part of the connections, answering from
    another ledger, and the binds of a port the issuance service or the metrics would not get
    fail late. A probe alone cannot tell two servers started in the same instant apart (each
    finds the port free before either binds it): the claim, taken in one bind, can; the probe
    still finds a port held by any other program."""
    claims: list[socket.socket] = []
    try:
        for name, host, port in ports:
            if port <= 0:  # 0: a free port is picked; below 0: not served
                continue
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            claims.append(claim)
            try:
                claim.bind(_CLAIM_NAME.format(port=port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise port_in_use(name, host, port) from None
            _probe(name, host, port)
    except BaseException:
        for claim in claims:
            claim.close()
        raise
    return claims


def _probe(name: str, host: str, port: int) -> None:
    """Without SO_REUSEPORT, the bind fails while any socket listens there; with SO_REUSEADDR,
    connections of a previous run waiting out TIME_WAIT do not count."""
    address = host.strip("[]")
    probe = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise port_in_use(name, host, port) from None
    finally:
        probe.close()


def port_in_use(name: str, host: str, port: int) -> FailedPrecondition:
    """What a server that cannot have one of its ports says, whenever it finds out."""
    return FailedPrecondition(
        f"{host}:{port} is in use by another process (another pharmatrace serve?): "
        "stop it or give this server other ports", field=name)


async def _refuse_cn_bindings(codegen: object) -> None:
    """Certificate bindings by subject CN alone would let any certificate with that CN (from
    any tenant's CA) act as the credential: the service does not start while one is active,
    and says how to bind it again by its certificate."""
    from codegen_svc.app import Codegen
    from tracecore.errors import FailedPrecondition
    from tracecore.usecases.credentials import cn_only_bindings

    assert isinstance(codegen, Codegen)
    stale = await asyncio.to_thread(cn_only_bindings, codegen.data)
    if stale:
        await codegen.stop(0)
        raise FailedPrecondition(
            "certificate bindings by subject CN alone no longer authenticate: "
            + "; ".join(stale) + ". Bind each client certificate again by its PEM "
            "(Admin.BindCertificate with certificate_pem), then revoke the old binding "
            "(pharmatrace tokens revoke), and start again")


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
