"""`pharmatrace serve`: the issuance service, the verification workers and the metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pharmatrace.serve")

DEMO_TENANT = "demo"


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


def prepare_metrics_dir(data: Path) -> Path:
    """Worker processes share metrics through files; this must run before prometheus_client is
    imported anywhere in this process."""
    directory = data / ".metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


async def serve(config: ServeConfig) -> None:
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from codegen_svc import app as codegen_app
    from tracecore.clock import now_ms
    from tracecore.errors import AlreadyExists
    from tracerpc.metrics import Metrics
    from verify_svc.workers import WorkerConfig, WorkerPool, key_source

    tls = _tls(config)
    if tls is None:
        log.warning("serving WITHOUT TLS (--insecure): for development on a trusted host only")
    keys = key_source(config.dev)
    if keys.is_development:
        log.warning("using the public DEVELOPMENT key passphrase: never for production data")
    metrics = Metrics()
    if not config.authenticate:
        log.warning("authentication is OFF (--dev): every caller may do everything")
    codegen = await codegen_app.start(
        config.data, keys, f"{config.host}:{config.issue_port}", metrics, tls=tls,
        authenticate=config.authenticate,
    )
    if config.dev and DEMO_TENANT not in codegen.data.names():
        with contextlib.suppress(AlreadyExists):
            codegen.data.create(DEMO_TENANT, "Demo Pharma", now_ms())
            log.info("created the development tenant %r", DEMO_TENANT)
    pool = WorkerPool(
        WorkerConfig(config.data, config.host, config.verify_port, config.dev, tls,
                     config.grace_s, config.authenticate, config.public_verify,
                     config.public_rate),
        config.workers,
    )
    verify_port = await asyncio.to_thread(pool.start)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    metrics_server, _ = start_http_server(config.metrics_port, addr=config.host.strip("[]"),
                                          registry=registry)
    ports = {"issue": codegen.port, "verify": verify_port,
             "metrics": metrics_server.server_port, "pid": os.getpid()}
    if config.ready_file is not None:
        tmp = config.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(config.ready_file)
    log.info("pharmatrace ready: issuance %s:%d, verification %s:%d (%d workers), metrics :%d",
             config.host, codegen.port, config.host, verify_port, pool.workers,
             metrics_server.server_port)

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
    log.info("shutting down: draining calls for up to %.0f s", config.grace_s)
    await asyncio.gather(codegen.stop(config.grace_s),
                         asyncio.to_thread(pool.stop, config.grace_s))
    metrics_server.shutdown()
    log.info("stopped")


def _ledger_gauges(data: object, metrics: object) -> None:
    from tracecore.ledger.tenants import DataDir
    from tracerpc.metrics import Metrics

    assert isinstance(data, DataDir) and isinstance(metrics, Metrics)
    for name in data.names():
        with contextlib.suppress(Exception):
            stat = data.get(name).ledger.env.stat()
            metrics.ledger_bytes.labels(name).set(stat["_bytes"])
            metrics.ledger_codes.labels(name).set(stat["codes"])


def _tls(config: ServeConfig) -> object:
    from tracerpc.certs import load_tls_files

    if config.tls_cert is None or config.tls_key is None:
        return None
    return load_tls_files(config.tls_cert, config.tls_key, config.client_ca)
