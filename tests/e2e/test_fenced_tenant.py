"""A tenant moved or promoted away from a node leaves the node's other tenants writable: only
the fenced tenant's writes are refused there, and none of its writes under way at the fence is
acknowledged unless its new writer holds it."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.e2e.conftest import Server
from tests.e2e.nats_server import NatsServer
from tests.e2e.test_move import Load, _move, _refusal
from tests.e2e.test_replica import _converged, _promote, _start_replica, _verdicts
from tests.e2e.test_replication_stream import GTIN, TENANT, _changes, _newest_commit, _write
from tests.processes import stop
from tracecore.keys import KeySource
from tracecore.ledger.code_keys import CodeKeys
from tracecore.replication.changes import PUT

pytestmark = pytest.mark.timeout(240)

#: A second enterprise on node-a, never moved.
OTHER = "other"
_OTHER_CODES = CodeKeys.of(KeySource.dev(), OTHER)
#: A product of OTHER's whose codes a contract packer mints.
_PACKED = "09501101530027"


def _node_a_with_two_tenants(servers, url: str, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> Server:
    """node-a writing TENANT and OTHER with `--replicated-commit`, both in their streams."""
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    node_a: Server = servers.start(tmp_path / "writer",
                                   extra=["--nats", url, "--replicated-commit"])
    with grpc.insecure_channel(node_a.issue_addr) as channel:
        admin_pb2_grpc.AdminStub(channel).CreateTenant(apb.CreateTenantRequest(
            tenant=OTHER, name="Other Pharma"), timeout=30)
    _write(node_a.issue_addr, "L0", 50)
    _write(node_a.issue_addr, "O0", 50, OTHER)
    with grpc.insecure_channel(node_a.issue_addr) as channel:
        admin_pb2_grpc.AdminStub(channel).RegisterProduct(apb.RegisterProductRequest(
            tenant=OTHER, product=cpb.Product(gtin=_PACKED, name="Ibuprofen 400 mg tablets")),
            timeout=30)
    return node_a


def _in_stream(url: str, db: str) -> set[str]:
    """The serials of the codes whose keys OTHER's stream puts into ``db``."""
    return {_OTHER_CODES.plain(key).decode()[15:] for c in _changes(url, OTHER)
            for kind, name, key, _ in c.ops if kind == PUT and name == db}


def _capture(addr: str, tenant: str, serials: list[str], lot: str
             ) -> lpb.CaptureEventsResponse:
    """A client stream commissioning ``serials`` of ``lot``."""
    with grpc.insecure_channel(addr) as channel:
        answer: lpb.CaptureEventsResponse = lifecycle_pb2_grpc.LifecycleStub(
            channel).CaptureEvents(iter([lpb.CaptureEventsRequest(tenant=tenant, events=[
                lpb.LifecycleEvent(kind=lpb.EVENT_KIND_COMMISSION, lot=lot,
                                   codes=[f"(01){GTIN}(21){s}" for s in serials])])]),
                timeout=30)
    return answer


def _register(addr: str, tenant: str, serials: list[str]) -> list[lpb.RegisterCodesResponse]:
    """A bidirectional stream registering codes minted elsewhere, a message per serial."""
    with grpc.insecure_channel(addr) as channel:
        return list(lifecycle_pb2_grpc.LifecycleStub(channel).RegisterCodes(iter([
            lpb.RegisterCodesRequest(tenant=tenant, codes=[f"(01){_PACKED}(21){s}"],
                                     minted_by="Contract Packer GmbH") for s in serials]),
            timeout=30))


def _refused(write: object) -> str:
    """The details of the FAILED_PRECONDITION a streamed write gets."""
    with pytest.raises(grpc.RpcError) as refused:
        write()  # type: ignore[operator]
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value
    return refused.value.details() or ""


def test_a_tenant_moved_away_leaves_the_nodes_other_tenant_writable(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After `tenant move` of one tenant to node-b, node-a refuses that tenant's writes, unary
    and streamed alike, naming node-b; its other tenant's writes (unary, server stream, client
    stream, bidirectional stream) are answered, each once its stream holds it."""
    node_a = _node_a_with_two_tenants(servers, nats_server.url, tmp_path, monkeypatch)
    replica_data = tmp_path / "replica"
    process, _ = _start_replica(nats_server.url, replica_data)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        _move(nats_server.url, replica_data)
    finally:
        stop(process, "pharmatrace replica")
    assert _refusal(node_a.issue_addr) == grpc.StatusCode.FAILED_PRECONDITION
    moved = f"no longer writes tenant {TENANT}: node node-b was promoted"
    assert moved in _refused(lambda: _capture(node_a.issue_addr, TENANT, ["X1"], "L0"))
    assert moved in _refused(lambda: _register(node_a.issue_addr, TENANT, ["X2"]))

    serials = _write(node_a.issue_addr, "O1", 100, OTHER)
    assert set(serials) <= _in_stream(nats_server.url, "codes")
    captured = _capture(node_a.issue_addr, OTHER, serials[:10], "O1")
    assert captured.recorded == 1 and not captured.failures, captured
    assert set(serials[:10]) <= _in_stream(nats_server.url, "code_events")
    foreign = ["F1000001", "F1000002", "F1000003"]
    registered = _register(node_a.issue_addr, OTHER, foreign)
    assert [a.registered for a in registered] == [1, 1, 1], registered
    assert set(foreign) <= _in_stream(nats_server.url, "foreign_codes")


def test_promoting_a_tenant_away_under_load_stops_only_its_writes(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`tenant promote` of one tenant while node-a writes both without pause: every write of
    that tenant node-a acknowledged, before or during the fence, verifies GENUINE on node-b;
    the other tenant's writes are never refused, go on after the fence, and are in its
    stream."""
    node_a = _node_a_with_two_tenants(servers, nats_server.url, tmp_path, monkeypatch)
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    moved, other = Load(node_a.issue_addr), Load(node_a.issue_addr, OTHER)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        moved.wait_acked_after(0)
        other.wait_acked_after(0)
        _promote(nats_server.url, replica_data)
        assert _refusal(node_a.issue_addr) == grpc.StatusCode.FAILED_PRECONDITION
        other.wait_acked_after(time.monotonic())
        moved.stop()
        other.stop()
        print(f"\n{TENANT}: {len(moved.acked)} codes acknowledged, failures {moved.failures}; "
              f"{OTHER}: {len(other.acked)} codes acknowledged, failures {other.failures}")
        assert "FAILED_PRECONDITION" not in other.failures, other.failures
        assert _verdicts(ports["verify"], moved.acked) == {vpb.VERDICT_GENUINE}
        assert set(other.acked) <= _in_stream(nats_server.url, "codes")
    finally:
        moved.stop()
        other.stop()
        stop(process, "pharmatrace replica")
