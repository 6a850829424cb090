"""The server killed or stopped in the middle of work: a SIGKILL loses nothing a client was
told and half-applies nothing (the short run of `python -m bench.faults`); a SIGTERM drains the
calls in flight, refuses new ones and acknowledges nothing it has not made durable."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb

from bench import faults

pytestmark = pytest.mark.timeout(300)

TENANT = "demo"  # created by `serve --dev`
GTIN = "09501101530003"
LOT = "DRAIN-1"
COUNT = 200_000
_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]


def test_sigkills_during_code_streams_and_commissioning_lose_nothing_and_split_nothing(
        tmp_path: Path) -> None:
    """Three SIGKILLs of the whole server while pools stream and codes are commissioned: after
    each restart doctor and audit verify pass, interrupted pools resume with exactly the codes
    received, no code is handed out twice, every code verifies GENUINE with the status its
    acknowledged commissionings gave it, and an unacknowledged commissioning is all or nothing."""
    report = faults.run(3, workers=1, seed=20260301, workdir=tmp_path, say=lambda _: None)
    assert report.findings == []
    assert report.kills == 3
    assert report.codes_issued > 0 and report.codes_commissioned > 0


def _texts(chunk: ipb.CodeChunk) -> list[str]:
    return [f"(01){chunk.product}(21){serial}" for serial in chunk.serials]


def _request(request_id: str) -> ipb.RequestCodesRequest:
    return ipb.RequestCodesRequest(tenant=TENANT, product=GTIN, lot=LOT, count=COUNT,
                                   chunk_size=1_000, request_id=request_id)


def test_sigterm_mid_stream_drains_refuses_new_streams_and_a_retry_gives_the_rest(
        servers, tmp_path: Path) -> None:
    """SIGTERM while a pool streams: health turns NOT_SERVING and a new stream is refused
    UNAVAILABLE; the server exits 0. Every chunk the client got is durable: after a restart
    those codes verify GENUINE, a retry of the request id gives them first and then the rest,
    and the refused request left no pool behind."""
    data = tmp_path / "data"
    first = servers.start(data, workers=1)
    with grpc.insecure_channel(first.issue_addr, options=_OPTIONS) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=TENANT, product=cpb.Product(
            gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=30)
        admin.AddBatch(apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
            product=GTIN, lot=LOT, expires_on="2030-06-30")), timeout=30)
        issuance = issuance_pb2_grpc.CodeIssuanceStub(channel)
        stream = issuance.RequestCodes(_request("drain"), timeout=120)
        received = _texts(next(stream))

        first.process.send_signal(signal.SIGTERM)
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
            except grpc.RpcError:
                break  # already past the drain: nothing answers any more
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
        with pytest.raises(grpc.RpcError) as refused:
            list(issuance.RequestCodes(_request("after-sigterm"), timeout=30))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        try:
            for chunk in stream:
                received += _texts(chunk)
        except grpc.RpcError:
            pass  # cut at the end of the grace period: the retry below gives the rest
    assert first.process.wait(60) == 0

    second = servers.start(data, workers=1)
    with grpc.insecure_channel(second.issue_addr, options=_OPTIONS) as channel, \
            grpc.insecure_channel(second.verify_addr, options=_OPTIONS) as verify_channel:
        issuance = issuance_pb2_grpc.CodeIssuanceStub(channel)
        again = [c for chunk in issuance.RequestCodes(_request("drain"), timeout=120)
                 for c in _texts(chunk)]
        assert again[:len(received)] == received
        assert len(again) == len(set(again)) == COUNT
        verification = verification_pb2_grpc.VerificationStub(verify_channel)
        verdicts = {v for start in range(0, len(received), 50_000)
                    for v in verification.VerifyBatch(vpb.VerifyBatchRequest(
                        tenant=TENANT, codes=received[start:start + 50_000]), timeout=60).verdicts}
        assert verdicts == {vpb.VERDICT_GENUINE}
        with pytest.raises(grpc.RpcError) as missing:
            issuance.GetPool(ipb.GetPoolRequest(tenant=TENANT, request_id="after-sigterm"),
                             timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
