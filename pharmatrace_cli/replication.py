"""`pharmatrace replica`: a read replica that follows tenants' streams on NATS JetStream and
serves Verification and Trace read-only; `pharmatrace replica status` shows how far it is."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import (
    EXIT_OK,
    CliError,
    StopRequested,
    add_command,
    stop_signals,
    stopped,
    unless_stopped,
    until_signalled,
)

log = logging.getLogger("pharmatrace.replica")

NATS_HELP = ("NATS server URL, or the comma-separated URLs of a cluster's nodes (default "
             "$PHARMATRACE_NATS)")


def register(commands: Any) -> None:
    """Adds `replica` (run, status) to the command group."""
    register_promote(commands)
    replica = add_command(commands, "replica", "Run a read replica of tenants published to NATS "
                          "JetStream (`serve --nats`), or show its status.", _replica,
                          client=False, tenant=False)
    replica.add_argument("action", nargs="?", default="run", choices=("run", "status"),
                         help="run (default) or status")
    replica.add_argument("--nats", default=os.environ.get("PHARMATRACE_NATS", ""),
        help=NATS_HELP)
    replica.add_argument("--data", default="./replica", help="the replica's data directory")
    replica.add_argument("--tenants", default="",
                         help="comma-separated tenants to follow (default: every tenant in the "
                         "snapshot store)")
    replica.add_argument("--host", default="127.0.0.1")
    replica.add_argument("--verify-port", type=int, default=50062,
                         help="Verification and Trace over gRPC (default 50062)")
    replica.add_argument("--metrics-port", type=int, default=9474,
                         help="Prometheus metrics (default 9474)")
    replica.add_argument("--http-port", type=int, default=8081,
                         help="the HTTP front door, read-only: check page, GS1 resolver, LVMS "
                         "(default 8081; 0: any free port; -1: none)")
    replica.add_argument("--public-base-url", default="",
                         help="the public URL the front door's links are built on")
    replica.add_argument("--workers", type=int, default=0)
    replica.add_argument("--dev", action="store_true",
                         help="development key passphrase and no authentication")
    replica.add_argument("--ready-file", help="write the bound ports here as JSON once serving")
    replica.add_argument("--write-when-promoted", action="store_true",
                         help="once this node ($PHARMATRACE_NODE) is promoted writer of every "
                         "tenant followed (`tenant move`, `tenant promote`), serve their "
                         "writes from this process, with replicated commit: no `serve` to "
                         "start")
    replica.add_argument("--issue-port", type=int, default=50061,
                         help="the issuance port once writing (0: any free port)")

    directory = commands.add_parser("directory", help="The replication directory on NATS: "
                                    "where each tenant is served.").add_subparsers(
                                        metavar="ACTION")
    route = add_command(directory, "route", "Which tenant a code belongs to, its writer and "
                        "its replicas (JSON).", _route, client=False, tenant=False)
    route.add_argument("code", help="a code in any form (HRI, element string, Digital Link, "
                       "NMPA digits)")
    route.add_argument("--nats", default=os.environ.get("PHARMATRACE_NATS", ""),
        help=NATS_HELP)


def _replica(args: argparse.Namespace) -> int:
    data = Path(args.data)
    if args.action == "status":
        return _status(data)
    if not args.nats:
        raise CliError("--nats URL (or $PHARMATRACE_NATS) is required")
    from pharmatrace_cli.serve import claim_ports, prepare_metrics_dir
    from tracerpc.logs import configure_logging

    # Its verification workers share their port (SO_REUSEPORT): another server there would be
    # handed part of the connections and answer from another ledger.
    claims = claim_ports(_listening_ports(args))
    try:
        data.mkdir(parents=True, exist_ok=True)
        prepare_metrics_dir(data)
        configure_logging()
        asyncio.run(_run(args, data))
    finally:
        for claim in claims:
            claim.close()
    return EXIT_OK


def _listening_ports(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(option, host, port) of every port a replica listens on, as `serve`'s
    ``listening_ports``; the issuance port only once it may write."""
    return [("verify_port", args.host, args.verify_port),
            ("http_port", args.host, args.http_port),
            ("metrics_port", args.host, args.metrics_port),
            ("issue_port", args.host, args.issue_port if args.write_when_promoted else -1)]


def _route(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from replica_svc.directory import route
    from replica_svc.streams import connect_once
    from tracecore.errors import TraceError

    async def look_up() -> dict[str, object]:
        nc = await connect_once(args.nats)
        try:
            return asdict(await route(nc.jetstream(), args.code))
        finally:
            await nc.close()

    if not args.nats:
        raise CliError("--nats URL (or $PHARMATRACE_NATS) is required")
    try:
        print(json.dumps(asyncio.run(look_up()), indent=2))
    except (KeyError, TraceError) as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK


def locate(url: str, codes: list[str]) -> tuple[str, str]:
    """(tenant, verification address of a node holding it) of ``codes``, from the directory:
    the first of the tenant's readers that accepts a connection."""
    import socket

    from replica_svc.directory import Route, route
    from replica_svc.streams import connect_once
    from tracecore.codes import parse
    from tracecore.errors import TraceError

    # One look-up per product: a file of a million codes names a few products.
    by_product: dict[str, str] = {}
    for code in codes:
        with contextlib.suppress(TraceError):  # unreadable: the node says why
            by_product.setdefault(parse(code).code.product, code)
    if not by_product:
        raise CliError("none of the codes names a product: nothing to look up")

    async def look_up() -> dict[str, Route]:
        nc = await connect_once(url)
        try:
            js = nc.jetstream()
            return {product: await route(js, code) for product, code in by_product.items()}
        finally:
            await nc.close()

    try:
        routes = asyncio.run(look_up())
    except (KeyError, TraceError) as exc:
        raise CliError(str(exc).strip("'\"")) from None
    tenants = sorted({r.tenant for r in routes.values()})
    if len(tenants) > 1:
        raise CliError(f"the codes belong to several tenants ({', '.join(tenants)}): verify "
                       "each tenant's codes on their own")
    found = next(iter(routes.values()))
    for address in found.readers():
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        except (OSError, ValueError):
            log.warning("verification at %s does not answer; trying the next node", address)
            continue
        return found.tenant, address
    raise CliError(f"no node serving tenant {found.tenant} answers: tried "
                   f"{', '.join(found.readers()) or 'none (the directory names none)'}")


def _status(data: Path) -> int:
    from replica_svc.replica import read_status

    try:
        doc = read_status(data)
    except FileNotFoundError:
        raise CliError(f"no replica has run in {data}") from None
    tenants = doc["tenants"]
    assert isinstance(tenants, list)
    print(f"{'tenant':<16} {'epoch':>5} {'commit':>10} {'stream':>10} {'lag msgs':>9} "
          f"{'lag s':>7}")
    for t in tenants:
        print(f"{t['tenant']:<16} {t['epoch']:>5} {t['applied_commit']:>10} "
              f"{t['applied_stream_seq']:>10} {t['lag_messages']:>9} {t['lag_seconds']:>7.2f}")
    return EXIT_OK


async def _tenants(url: str, wanted: str) -> list[str]:
    if wanted:
        return [t.strip() for t in wanted.split(",") if t.strip()]
    from replica_svc.snapshots import BUCKET
    from replica_svc.streams import connect_once

    nc = await connect_once(url)
    try:
        bucket = await nc.jetstream().object_store(BUCKET)
        return sorted(info.name for info in await bucket.list() if info.name)
    finally:
        await nc.close()


async def _run(args: argparse.Namespace, data: Path) -> None:
    """Serves until SIGTERM or SIGINT, even one that comes while it is still starting. What
    has started is stopped, last started first, even when starting or stopping a part fails:
    a verification worker left running would keep the process from exiting."""
    stop = stop_signals()
    try:
        await _serve_replica(args, data, stop)
    except StopRequested:
        log.info("replica stopped before it was ready")


async def _serve_replica(args: argparse.Namespace, data: Path, stop: asyncio.Event) -> None:
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    from pharmatrace_cli.serve import front_door_url
    from replica_svc.replica import Replica
    from tracecore.replication.sealing import Sealing
    from verify_svc.workers import WorkerConfig, WorkerPool, key_source

    async with contextlib.AsyncExitStack() as started:
        sealing = await asyncio.to_thread(Sealing.of, key_source(args.dev))
        stopped(stop)
        tenants = await unless_stopped(stop, _tenants(args.nats, args.tenants))
        replica = await unless_stopped(stop, Replica.start(args.nats, data, tenants, sealing))
        started.push_async_callback(replica.stop)
        pool = WorkerPool(WorkerConfig(data, args.host, args.verify_port, args.dev, None,
                                       authenticate=not args.dev,
                                       http_port=args.http_port if args.http_port >= 0 else None,
                                       public_base_url=args.public_base_url,
                                       read_your_writes=True, nats=args.nats),
                          args.workers or os.cpu_count() or 1)
        started.push_async_callback(asyncio.to_thread, pool.stop, 5.0)
        verify_port = await asyncio.to_thread(pool.start)
        stopped(stop)
        front_door = front_door_url(args.public_base_url, args.host, pool.http_port, False)
        await unless_stopped(stop, replica.announce(f"{args.host}:{verify_port}", front_door))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(_LagCollector(replica))
        metrics_server, _ = start_http_server(args.metrics_port, addr=args.host,
                                              registry=registry)
        started.callback(metrics_server.shutdown)
        if args.ready_file:
            ready = Path(args.ready_file)
            tmp = ready.with_suffix(".tmp")
            ports = {"verify": verify_port, "metrics": metrics_server.server_port,
                     "pid": os.getpid()}
            if pool.http_port is not None:
                ports["http"] = pool.http_port
            tmp.write_text(json.dumps(ports))
            tmp.replace(ready)
        log.info("replica ready: verification %s:%d, metrics :%d, HTTP front door :%s, "
                 "tenants %s", args.host, verify_port, metrics_server.server_port,
                 pool.http_port or "off", ", ".join(replica.tenants))
        if args.write_when_promoted:
            from pharmatrace_cli import replica_writer

            writer = replica_writer.start(args, data, replica, f"{args.host}:{verify_port}",
                                          front_door)
            started.push_async_callback(writer.stop, 5.0)
        await until_signalled(stop, lambda: asyncio.to_thread(pool.respawn_dead))


class _LagCollector:
    """The replica's position and lag per tenant, read at each scrape."""

    def __init__(self, replica: Any) -> None:
        self._replica = replica

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        lag = GaugeMetricFamily("pharmatrace_replica_lag_messages",
                                "Stream messages not yet applied", labels=["tenant"])
        seconds = GaugeMetricFamily("pharmatrace_replica_lag_seconds",
                                    "Age of the last change applied while behind",
                                    labels=["tenant"])
        applied = GaugeMetricFamily("pharmatrace_replica_applied_commit",
                                    "Last commit applied", labels=["tenant"])
        changes = CounterMetricFamily("pharmatrace_replica_applied_changes",
                                      "Change records applied", labels=["tenant"])
        for s in self._replica.statuses():
            lag.add_metric([s.tenant], s.lag_messages)
            seconds.add_metric([s.tenant], s.lag_seconds)
            applied.add_metric([s.tenant], s.applied_commit)
            changes.add_metric([s.tenant], s.applied_changes)
        yield from (lag, seconds, applied, changes)


def register_promote(commands: Any) -> None:
    """Adds `tenant promote`."""
    from pharmatrace_cli.command import subgroup

    tenant = subgroup(commands, "tenant", "Administer tenants.")
    promote = add_command(tenant, "promote", "Make NODE the writer of TENANT after its writer "
                          "was lost: the directory names it under a new writer term and a "
                          "fence in the stream refuses the old writer's changes. Then start "
                          "`serve --nats` on NODE's replica data with PHARMATRACE_NODE=NODE.",
                          _promote, client=False, tenant=False)
    promote.add_argument("name", metavar="TENANT")
    promote.add_argument("--node", required=True, help="the node to promote")
    promote.add_argument("--nats", default=os.environ.get("PHARMATRACE_NATS", ""),
        help=NATS_HELP)
    promote.add_argument("--replica-data", help="the promoted node's replica data directory: "
                         "wait until it has applied everything up to the fence")
    promote.add_argument("--timeout", type=float, default=60.0)
    move = add_command(tenant, "move", "Move TENANT's writes to NODE, whose replica "
                       "(`pharmatrace replica`) follows it: once the replica has caught up, the "
                       "writer pauses writes (UNAVAILABLE, retry), NODE is promoted and its "
                       "replica applies everything up to the fence; then start `serve --nats` "
                       "on NODE's replica data with PHARMATRACE_NODE=NODE. The writer must run "
                       "with --replicated-commit. Prints the pause in seconds.", _move,
                       client=False, tenant=False)
    move.add_argument("name", metavar="TENANT")
    move.add_argument("--to", required=True, metavar="NODE", help="the node to move to")
    move.add_argument("--nats", default=os.environ.get("PHARMATRACE_NATS", ""),
        help=NATS_HELP)
    move.add_argument("--replica-data", required=True,
                      help="NODE's replica data directory")
    move.add_argument("--timeout", type=float, default=60.0)


def _move(args: argparse.Namespace) -> int:
    if not args.nats:
        raise CliError("--nats URL (or $PHARMATRACE_NATS) is required")
    from replica_svc.move import move
    from tracecore.errors import TraceError

    try:
        result = asyncio.run(move(args.nats, args.name, args.to, Path(args.replica_data),
                                  args.timeout))
    except TraceError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result))
    return EXIT_OK


def _promote(args: argparse.Namespace) -> int:
    if not args.nats:
        raise CliError("--nats URL (or $PHARMATRACE_NATS) is required")
    from replica_svc.promote import promote

    result = asyncio.run(promote(args.nats, args.name, args.node,
                                 Path(args.replica_data) if args.replica_data else None,
                                 args.timeout))
    print(json.dumps(result))
    return EXIT_OK
