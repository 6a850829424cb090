"""The issuance service assembled: data directory, write side (writer thread, group commit,
clock), servicers, one gRPC server. The one place these are wired together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from pharmatrace.v1 import (
    admin_pb2_grpc,
    issuance_pb2_grpc,
    lifecycle_pb2_grpc,
    logistics_pb2_grpc,
)
from pharmatrace.v1 import ledger_pb2 as lpb

from codegen_svc.admin import AdminServicer
from codegen_svc.issuance import CodeIssuanceServicer
from codegen_svc.lifecycle import LifecycleServicer
from codegen_svc.logistics import LogisticUnitsServicer
from frontdoor.epcis_runner import EpcisRunner
from tracecore.credentials import OPERATOR
from tracecore.keys import KeySource
from tracecore.ledger import alerts
from tracecore.ledger.env import DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE
from tracecore.ledger.tenants import DataDir
from tracecore.usecases import importer
from tracecore.usecases.writer import Batcher
from tracecore.usecases.writeside import WriteSide
from tracerpc import runtime
from tracerpc import server as rpc_server
from tracerpc.authz import Authorizer
from tracerpc.metrics import Metrics


@dataclass
class Codegen:
    running: rpc_server.Running
    side: WriteSide
    epcis: EpcisRunner

    @property
    def data(self) -> DataDir:
        return self.side.data

    @property
    def port(self) -> int:
        return self.running.port

    async def stop(self, grace_s: float) -> None:
        await self.quiesce(grace_s)
        self.close()

    async def quiesce(self, grace_s: float) -> None:
        """Stops taking calls and lets those under way finish (for up to ``grace_s``): nothing
        writes any more, and the ledgers stay open for a last write of the node's own."""
        await self.running.stop(grace_s)
        await self.epcis.stop()

    def close(self) -> None:
        """Waits for the writes in progress, then closes every ledger."""
        self.side.close()
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
    max_import_bytes: int = importer.DEFAULT_MAX_BYTES,
    default_time_zone: str = "UTC",
) -> Codegen:
    """The issuance server, started; each tenant's ledger maps ``map_size`` bytes at first and
    grows, when full, up to ``max_map_size`` (then writes fail RESOURCE_EXHAUSTED); an EPCIS
    import may send at most ``max_import_bytes``."""
    data = DataDir(data_root, keys, map_size=map_size, max_map_size=max_map_size)
    data.add_close_listener(lambda _, path: alerts.close_book(path))
    side = WriteSide.open(data, importer=importer.Importer(max_bytes=max_import_bytes))
    side.default_time_zone = default_time_zone
    audit: Batcher[lpb.AuditRecord, None] = Batcher(
        side.writer, lambda tenant, records: _record_audit(data, tenant, records))
    authorizer = Authorizer(data, enabled=authenticate, audit=audit.submit)
    services = [
        rpc_server.Service("pharmatrace.v1.Admin", AdminServicer(side),
                           admin_pb2_grpc.add_AdminServicer_to_server),
        rpc_server.Service("pharmatrace.v1.CodeIssuance",
                           CodeIssuanceServicer(side, metrics),
                           issuance_pb2_grpc.add_CodeIssuanceServicer_to_server),
        rpc_server.Service("pharmatrace.v1.Lifecycle", LifecycleServicer(side),
                           lifecycle_pb2_grpc.add_LifecycleServicer_to_server),
        rpc_server.Service("pharmatrace.v1.LogisticUnits",
                           LogisticUnitsServicer(side.data, side.writer),
                           logistics_pb2_grpc.add_LogisticUnitsServicer_to_server),
    ]
    try:
        running = await rpc_server.start(services, address, metrics, tls=tls,
                                         authorizer=authorizer, interceptors=interceptors)
    except BaseException:
        side.close()
        data.close()
        raise
    # Capture jobs and webhook deliveries of the EPCIS REST binding, which the front door
    # (in the verification workers, which do not write the ledger) leaves to this process.
    epcis = EpcisRunner(side, audit.submit)
    await epcis.start()
    runtime.tune()
    return Codegen(running, side, epcis)


def _record_audit(data: DataDir, tenant: str, records: list[lpb.AuditRecord]) -> list[None]:
    access = data.operator() if tenant == OPERATOR else data.get(tenant).access
    access.record_audit(records)
    return [None] * len(records)
