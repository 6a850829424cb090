"""Read-your-writes: the writer (`--replicated-commit`) answers each write with the stream
sequence holding it; a replica asked with that sequence answers only once it has applied it,
and names its lag when it cannot in time."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import issuance_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import verification_pb2 as vpb

from tests.e2e.nats_server import NatsServer
from tests.e2e.test_replica import _converged, _start_replica
from tests.e2e.test_replication_stream import GTIN, TENANT, _newest_commit, _write
from tests.processes import stop

pytestmark = pytest.mark.timeout(240)


def _issue(channel: grpc.Channel, lot: str, number: int) -> tuple[str, int]:
    """A code issued on the writer and the sequence its answer names."""
    call = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(ipb.RequestCodesRequest(
        tenant=TENANT, product=GTIN, lot=lot, count=1, request_id=f"RYW-{number}"), timeout=30)
    serials = [s for chunk in call for s in chunk.serials]
    seq = dict(call.trailing_metadata() or ())["x-min-seq"]
    return serials[0], int(seq)


def test_a_read_naming_the_last_write_sees_it_on_the_replica(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """Each code, checked on the replica right after it was issued with the sequence the
    writer returned, verifies GENUINE; a sequence the stream has not reached is answered
    UNAVAILABLE naming how far behind the replica is."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url,
                                                       "--replicated-commit"])
    _write(writer.issue_addr, "L1", 10)
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        verdicts = []
        with grpc.insecure_channel(writer.issue_addr) as issuing, \
                grpc.insecure_channel(f"127.0.0.1:{ports['verify']}") as reading:
            verify = verification_pb2_grpc.VerificationStub(reading).Verify
            for number in range(20):
                serial, seq = _issue(issuing, "L1", number)
                verdicts.append(verify(vpb.VerifyRequest(
                    tenant=TENANT, code=f"(01){GTIN}(21){serial}"), timeout=30,
                    metadata=(("x-min-seq", str(seq)),)).verdict)
            with pytest.raises(grpc.RpcError) as behind:
                verify(vpb.VerifyRequest(tenant=TENANT, code=f"(01){GTIN}(21){serial}"),
                       timeout=30, metadata=(("x-min-seq", str(seq + 1000)),))
        assert verdicts == [vpb.VERDICT_GENUINE] * 20
        assert behind.value.code() == grpc.StatusCode.UNAVAILABLE
        details = behind.value.details() or ""
        assert f"behind the {seq + 1000} asked for" in details
        assert "has applied tenant demo up to stream sequence" in details
    finally:
        stop(process, "pharmatrace replica")


def test_a_sequence_asked_of_a_tenant_the_replica_does_not_follow_is_misdirected(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """A read naming a sequence of a tenant the replica does not follow is answered at once
    that it does not follow it (gRPC NOT_FOUND, HTTP 421 Misdirected Request), not left to
    wait and answered "applied up to 0"; the tenant it follows is served as before."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url,
                                                       "--replicated-commit"])
    serial = _write(writer.issue_addr, "L1", 1)[0]
    code = f"(01){GTIN}(21){serial}"
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        with grpc.insecure_channel(f"127.0.0.1:{ports['verify']}") as reading:
            verify = verification_pb2_grpc.VerificationStub(reading).Verify
            with pytest.raises(grpc.RpcError) as misdirected:
                verify(vpb.VerifyRequest(tenant="acme", code=code), timeout=30,
                       metadata=(("x-min-seq", "1"),))
            assert verify(vpb.VerifyRequest(tenant=TENANT, code=code), timeout=30,
                          metadata=(("x-min-seq", "1"),)).verdict == vpb.VERDICT_GENUINE
        assert misdirected.value.code() == grpc.StatusCode.NOT_FOUND
        assert "does not follow tenant acme" in (misdirected.value.details() or "")
        check = f"http://127.0.0.1:{ports['http']}/check"
        other = httpx.get(check, params={"code": code}, headers={"X-Min-Seq": "acme=1"},
                          timeout=30)
        assert other.status_code == 421
        assert "does not follow tenant acme" in other.json()["detail"]
        assert httpx.get(check, params={"code": code}, headers={"X-Min-Seq": f"{TENANT}=1"},
                         timeout=30).status_code == 200
    finally:
        stop(process, "pharmatrace replica")
