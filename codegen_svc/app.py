"""The issuance service assembled: data directory, writer thread, servicers, one gRPC server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import ledger_pb2 as lpb

from codegen_svc.admin import AdminServicer
from codegen_svc.issuance import CodeIssuanceServicer
from codegen_svc.lifecycle import GroupCommitter, LifecycleServicer
from codegen_svc.writer import Batcher, Writer
from tracecore.credentials import OPERATOR
from tracecore.keys import KeySource
from tracecore.ledger import alerts
from tracecore.ledger.env import DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE
from tracecore.ledger.tenants import DataDir
from tracerpc import server as rpc_server
from tracerpc.authz import Authorizer
from tracerpc.metrics import Metrics


@dataclass
class Codegen:
    running: rpc_server.Running
    data: DataDir
    writer: Writer

    @property
    def port(self) -> int:
        return self.running.port

    async def stop(self, grace_s: float) -> None:
        await self.running.stop(grace_s)
        self.writer.close()
        self.data.close()


async def start(
    data_root: Path,
    keys: KeySource,
    address: str,
    metrics: Metrics,
    *,
    tls: rpc_server.Tls | None,
    authenticate: bool = True,
    map_size: int = DEFAULT_MAP_SIZE,
    max_map_size: int = DEFAULT_MAX_MAP_SIZE,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> Codegen:
    """The issuance server, started; each tenant's ledger maps ``map_size`` bytes at first and
    grows, when full, up to ``max_map_size`` (then writes fail RESOURCE_EXHAUSTED)."""
    data = DataDir(data_root, keys, map_size=map_size, max_map_size=max_map_size)
    data.add_close_listener(lambda _, path: alerts.close_book(path))
    writer = Writer()
    committer = GroupCommitter(writer, data)
    audit: Batcher[str, lpb.AuditRecord, None] = Batcher(
        writer, lambda tenant, records: _record_audit(data, tenant, records))
    authorizer = Authorizer(data, enabled=authenticate, audit=audit.submit)
    services = [
        rpc_server.Service("pharmatrace.v1.Admin", AdminServicer(data, writer),
                           admin_pb2_grpc.add_AdminServicer_to_server),
        rpc_server.Service("pharmatrace.v1.CodeIssuance",
                           CodeIssuanceServicer(data, writer, committer, metrics),
                           issuance_pb2_grpc.add_CodeIssuanceServicer_to_server),
        rpc_server.Service("pharmatrace.v1.Lifecycle", LifecycleServicer(data, committer),
                           lifecycle_pb2_grpc.add_LifecycleServicer_to_server),
    ]
    running = await rpc_server.start(services, address, metrics, tls=tls, authorizer=authorizer,
                                     interceptors=interceptors)
    return Codegen(running, data, writer)


def _record_audit(data: DataDir, tenant: str, records: list[lpb.AuditRecord]) -> list[None]:
    access = data.operator() if tenant == OPERATOR else data.get(tenant).access
    access.record_audit(records)
    return [None] * len(records)
