"""The issuance service assembled: data directory, writer thread, servicers, one gRPC server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, lifecycle_pb2_grpc

from codegen_svc.admin import AdminServicer
from codegen_svc.issuance import CodeIssuanceServicer
from codegen_svc.lifecycle import GroupCommitter, LifecycleServicer
from codegen_svc.writer import Writer
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracerpc import server as rpc_server
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
) -> Codegen:
    data = DataDir(data_root, keys)
    writer = Writer()
    committer = GroupCommitter(writer)
    services = [
        rpc_server.Service("pharmatrace.v1.Admin", AdminServicer(data, writer),
                           admin_pb2_grpc.add_AdminServicer_to_server),
        rpc_server.Service("pharmatrace.v1.CodeIssuance",
                           CodeIssuanceServicer(data, writer, committer, metrics),
                           issuance_pb2_grpc.add_CodeIssuanceServicer_to_server),
        rpc_server.Service("pharmatrace.v1.Lifecycle", LifecycleServicer(data, committer),
                           lifecycle_pb2_grpc.add_LifecycleServicer_to_server),
    ]
    running = await rpc_server.start(services, address, metrics, tls=tls)
    return Codegen(running, data, writer)
