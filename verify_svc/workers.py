"""Verification worker processes: N servers on one port (SO_REUSEPORT), each reading the ledgers
read-only and flushing its scan statistics in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pharmatrace.v1 import printing_pb2_grpc, trace_pb2_grpc

from tracecore.keys import KeySource
from tracecore.ledger.env import DEFAULT_MAP_SIZE
from tracecore.ledger.tenants import DataDir
from tracecore.ratelimit import RateLimiter
from tracerpc import runtime
from tracerpc import server as rpc_server
from tracerpc.authz import Authorizer
from tracerpc.logs import configure_logging
from tracerpc.metrics import Metrics
from tracerpc.tasks import cancel_and_wait
from verify_svc.printing import PrintJobsServicer
from verify_svc.trace import TraceServicer
from verify_svc.verification import SERVICE, VerificationServicer, Verifiers, add_to_server

if TYPE_CHECKING:
    from frontdoor.app import Built
    from frontdoor.server import RunningHttp
    from tracecore.usecases.routing import Directory

log = logging.getLogger("pharmatrace.verify")

#: How often a worker writes its buffered scan statistics.
FLUSH_INTERVAL_S = 0.25


@dataclass(frozen=True)
class WorkerConfig:
    data: Path
    host: str
    port: int
    dev_keys: bool
    tls: rpc_server.Tls | None
    grace_s: float = 5.0
    authenticate: bool = True
    public_verify: bool = False
    public_rate: float = 10.0
    map_size: int = DEFAULT_MAP_SIZE
    http_port: int | None = None
    """The HTTP front door's port (0: any free one); None: no front door."""
    public_base_url: str = ""
    http_tls: tuple[Path, Path] | None = None
    """Certificate chain and key files of the front door (the gRPC port's)."""
    http_header_timeout_s: float = 10.0
    max_import_bytes: int = 16 * 1024 * 1024
    """Largest EPCIS document one POST /epcis/capture may send (serve --max-import-mib)."""
    public_port: int | None = None
    """With mutual TLS: a port (0: any free one) served with server-only TLS, for public
    verification and token holders without a client certificate; None: none."""
    read_your_writes: bool = False
    """A replica's workers: a call naming ``x-min-seq`` waits until the copy holds it."""
    nats: str = ""
    """The replication's NATS URL: the front door sends a request for a code of a tenant this
    node does not hold to a node that holds it, as the directory says."""


def key_source(dev_keys: bool) -> KeySource:
    """The key-encryption key: development passphrase, or from the environment."""
    return KeySource.dev() if dev_keys else KeySource.from_env()


async def serve_worker(config: WorkerConfig, ready: multiprocessing.connection.Connection | None
                       ) -> None:
    """One worker: serves until SIGTERM/SIGINT, then drains and flushes."""
    data = DataDir(config.data, key_source(config.dev_keys), readonly=True,
                   map_size=config.map_size)
    verifiers = Verifiers(data)
    metrics = Metrics()
    services = [
        rpc_server.Service(SERVICE, VerificationServicer(verifiers, metrics), add_to_server),
        rpc_server.Service("pharmatrace.v1.Trace", TraceServicer(data),
                           trace_pb2_grpc.add_TraceServicer_to_server),
        rpc_server.Service("pharmatrace.v1.PrintJobs", PrintJobsServicer(data),
                           printing_pb2_grpc.add_PrintJobsServicer_to_server),
    ]
    authorizer = Authorizer(
        data, enabled=config.authenticate, public_verify=config.public_verify,
        public_limit=RateLimiter(config.public_rate, burst=max(1.0, 2 * config.public_rate)),
    )
    interceptors = []
    if config.read_your_writes:
        from replica_svc.read_your_writes import ReadYourWrites

        interceptors.append(ReadYourWrites(config.data))
    running = await rpc_server.start(
        services, f"{config.host}:{config.port}", metrics, tls=config.tls,
        authorizer=authorizer, reuse_port=True, interceptors=interceptors,
        public_address=(f"{config.host}:{config.public_port}"
                        if config.public_port is not None else ""),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime.tune()
    http = http_server = mirror = None
    if config.http_port is not None:
        if config.nats:
            from replica_svc.directory_mirror import DirectoryMirror

            mirror = DirectoryMirror.start(config.nats)
        http_server, http = await _start_http(config, data, verifiers, metrics, mirror)
    if ready is not None:
        try:
            ready.send(running.port)
        except (BrokenPipeError, ConnectionResetError):
            # Stopped while this worker started (SIGTERM during `serve`'s start): nobody waits
            # for it, so it stops as it would on SIGTERM, not with a traceback.
            log.warning("the serving process is gone before this worker was ready; it stops")
            stop.set()
        finally:
            ready.close()

    parent = os.getppid()

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            if os.getppid() != parent:
                # The supervisor died without stopping us (SIGKILL): nobody will, so stop here.
                log.warning("the serving process is gone; this worker stops")
                stop.set()
            try:
                # A tenant taken offline is closed here even if no call asks for it.
                data.sweep()
            except Exception:
                log.exception("closing tenants taken offline failed")
            try:
                await asyncio.to_thread(verifiers.flush)
            except Exception:
                log.exception("flushing scan statistics failed; kept for the next flush")
            if http is not None:
                try:
                    await asyncio.to_thread(http.flush)
                except Exception:
                    log.exception("writing the answer trail failed; kept for the next flush")

    flusher = asyncio.create_task(flush_forever())
    await stop.wait()
    if http_server is not None:
        await http_server.stop(config.grace_s)
    await running.stop(config.grace_s)
    await cancel_and_wait(flusher)
    if http is not None:
        http.close()
    if mirror is not None:
        await mirror.stop()
    verifiers.close()
    data.close()


async def _start_http(config: WorkerConfig, data: DataDir, verifiers: Verifiers,
                      metrics: Metrics, directory: Directory | None
                      ) -> tuple[RunningHttp, Built]:
    """The HTTP front door on this worker's loop, over its read-only ledgers."""
    from frontdoor import server
    from frontdoor.app import build
    from frontdoor.http import FrontdoorConfig

    assert config.http_port is not None
    built = build(FrontdoorConfig(config.public_base_url, config.public_rate,
                                  config.max_import_bytes), data, verifiers,
                  metrics, directory)
    app: Any = built.app
    if config.read_your_writes:
        from replica_svc.read_your_writes import HttpReadYourWrites

        app = HttpReadYourWrites(app, config.data)
    running = await server.start(app, server.bind(config.host, config.http_port),
                                 tls=config.http_tls,
                                 header_timeout_s=config.http_header_timeout_s,
                                 grace_s=config.grace_s)
    return running, built


def _worker_main(config: WorkerConfig, ready: multiprocessing.connection.Connection) -> None:
    configure_logging()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve_worker(config, ready))


class WorkerPool:
    """Starts, watches and stops the worker processes."""

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self.config = config
        self.workers = max(1, workers)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._ctx = multiprocessing.get_context("spawn")
        self._reservations: list[socket.socket] = []
        self.http_port: int | None = config.http_port
        self.public_port: int | None = config.public_port

    def start(self, timeout: float = 30.0) -> int:
        """Starts every worker and returns the port they share."""
        port = self.config.port
        if port == 0:
            port = self._reserve()
            self.config = WorkerConfig(**{**self.config.__dict__, "port": port})
        if self.config.http_port == 0:
            self.http_port = self._reserve()
            self.config = WorkerConfig(**{**self.config.__dict__, "http_port": self.http_port})
        if self.config.public_port == 0:
            self.public_port = self._reserve()
            self.config = WorkerConfig(**{**self.config.__dict__,
                                          "public_port": self.public_port})
        for _ in range(self.workers):
            self._spawn(timeout)
        for reservation in self._reservations:
            reservation.close()
        self._reservations.clear()
        return port

    def _reserve(self) -> int:
        """A free port, held (bound, not listening) so the workers can all bind it by number."""
        reservation = socket.socket(socket.AF_INET6 if ":" in self.config.host
                                    else socket.AF_INET)
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind((self.config.host.strip("[]"), 0))
        self._reservations.append(reservation)
        return int(reservation.getsockname()[1])

    def _spawn(self, timeout: float) -> None:
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=_worker_main, args=(self.config, send),
                                    name="pharmatrace-verify", daemon=False)
        process.start()
        send.close()
        if not receive.poll(timeout):
            process.kill()
            raise RuntimeError("a verification worker did not start in time")
        try:
            receive.recv()
        except EOFError as exc:
            process.join(5)
            raise RuntimeError(f"a verification worker failed to start (exit {process.exitcode})"
                               ) from exc
        self._processes.append(process)

    def respawn_dead(self) -> int:
        """Replaces workers that died; returns how many."""
        dead = [p for p in self._processes if not p.is_alive()]
        for process in dead:
            log.error("verification worker %s exited with %s; restarting", process.pid,
                      process.exitcode)
            self._processes.remove(process)
            self._spawn(30.0)
        return len(dead)

    def stop(self, grace_s: float) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s + 5
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self._processes.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]
