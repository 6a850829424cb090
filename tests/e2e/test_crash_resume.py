"""A server killed in the middle of a code pool, restarted on the same data, finishes the pool:
what the line received is kept, nothing is issued twice, every code verifies."""

from __future__ import annotations

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb

pytestmark = pytest.mark.timeout(180)

TENANT = "demo"  # created by `serve --dev`
GTIN = "09501101530003"
LOT = "CRASH-1"
COUNT = 300_000
CHUNK = 20_000
VERIFY_BATCH = 100_000
_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]


def _pool_request(request_id: str, count: int = COUNT) -> ipb.RequestCodesRequest:
    return ipb.RequestCodesRequest(tenant=TENANT, product=GTIN, lot=LOT, count=count,
                                   request_id=request_id, chunk_size=CHUNK)


def _serials(chunks: list[ipb.CodeChunk]) -> list[str]:
    return [serial for chunk in chunks for serial in chunk.serials]


def test_a_pool_cut_by_a_server_crash_resumes_exactly_after_restart(servers, tmp_path) -> None:
    """SIGKILL to the server group mid-stream; after a restart on the same data, a retry of the
    request id gives the codes received before the crash, then the rest: exactly COUNT distinct
    codes, all GENUINE, none shared with another pool."""
    data = tmp_path / "data"
    first = servers.start(data)
    with grpc.insecure_channel(first.issue_addr, options=_OPTIONS) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=TENANT, product=cpb.Product(
            gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=30)
        admin.AddBatch(apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
            product=GTIN, lot=LOT, expires_on="2029-06-30")), timeout=30)
        stream = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(
            _pool_request("R"), timeout=120)
        received = [next(stream)]
        first.kill()
        with pytest.raises(grpc.RpcError):
            # Chunks already on the wire still arrive; then the stream breaks.
            received.extend(stream)
    before_crash = _serials(received)
    assert 0 < len(before_crash) < COUNT, "the server was not killed in the middle of the pool"

    second = servers.start(data)
    with grpc.insecure_channel(second.issue_addr, options=_OPTIONS) as channel:
        issuance = issuance_pb2_grpc.CodeIssuanceStub(channel)
        interrupted = issuance.GetPool(ipb.GetPoolRequest(tenant=TENANT, request_id="R"),
                                       timeout=30).pool
        retried = list(issuance.RequestCodes(_pool_request("R"), timeout=120))
        pool = issuance.GetPool(ipb.GetPoolRequest(tenant=TENANT, request_id="R"),
                                timeout=30).pool
        other = _serials(list(issuance.RequestCodes(_pool_request("R2", CHUNK), timeout=120)))

    # Every chunk the line received had been committed before it was sent.
    assert len(before_crash) <= interrupted.issued
    assert (interrupted.state == ipb.POOL_STATE_OPEN) is (interrupted.issued < COUNT)
    codes = _serials(retried)
    assert codes[:len(before_crash)] == before_crash
    assert len(codes) == len(set(codes)) == COUNT
    assert [c.offset for c in retried] == list(range(0, COUNT, CHUNK))
    assert (pool.issued, pool.state) == (COUNT, ipb.POOL_STATE_COMPLETE)
    assert len(set(other)) == CHUNK
    assert not set(other) & set(codes)

    texts = [f"(01){GTIN}(21){serial}" for serial in codes + other]
    with grpc.insecure_channel(second.verify_addr, options=_OPTIONS) as channel:
        verification = verification_pb2_grpc.VerificationStub(channel)
        verdicts = set()
        for start in range(0, len(texts), VERIFY_BATCH):
            answer = verification.VerifyBatch(vpb.VerifyBatchRequest(
                tenant=TENANT, codes=texts[start:start + VERIFY_BATCH]), timeout=120)
            verdicts.update(answer.verdicts)
    assert verdicts == {vpb.VERDICT_GENUINE}
