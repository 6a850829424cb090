"""VerifyBatch's and VerifyStream's answers as the server writes them (compiled, see
``verify_svc.verification.batch_answer_bytes``) against the Python path's, over real servers
and real clients: a worker started with ``PHARMATRACE_PURE=1`` answers a batch first, then the
test's session worker answers the same batch. Both read the same ledger and scan statistics,
so the answers are the same message but for the scans the first one added to each genuine
row's count; the bytes are protobuf's encoding of that message."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product, NmpaProduct, Servers
from tracecore._speedups import PURE_ENV
from tracecore.codes import Scheme
from verify_svc.verification import _wire
from verify_svc.workers import WorkerConfig, WorkerPool

pytestmark = pytest.mark.timeout(180)

BATCH_METHOD = "/pharmatrace.v1.Verification/VerifyBatch"
FOREIGN_GTIN = "10614141073464"
DE = {"y": "z", "z": "y", "Y": "Z", "Z": "Y", "(": ")", ")": "=", "/": "-", "-": "ß"}


@pytest.fixture
def pure_worker(servers: Servers, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[tuple[WorkerPool, str]]:
    """A verification worker of its own on the session's data, on the Python path (a spawned
    process reads the environment at its start), and its address."""
    monkeypatch.setenv(PURE_ENV, "1")
    pool = WorkerPool(WorkerConfig(servers.data, "127.0.0.1", 0, dev_keys=True, tls=None,
                                   grace_s=1.0, authenticate=False), workers=1)
    port = pool.start()
    try:
        yield pool, f"127.0.0.1:{port}"
    finally:
        pool.stop(1.0)


def _foreign_minted(api: Api, issue_channel: grpc.Channel, tenant: str) -> list[str]:
    """Two codes of another company received through EPCIS, the first naming who minted it."""
    links = [f"https://id.gs1.org/01/{FOREIGN_GTIN}/21/W-{n}" for n in (1, 2)]
    place = "urn:epc:id:sgln:0614141.07346.0"

    def receipt(event_id: str, epcs: list[str]) -> dict[str, object]:
        return {"type": "ObjectEvent", "eventID": event_id,
                "eventTime": "2025-03-05T09:30:00.250+01:00", "eventTimeZoneOffset": "+01:00",
                "epcList": epcs, "action": "OBSERVE", "bizStep": "receiving",
                "disposition": "in_progress", "readPoint": {"id": place},
                "bizLocation": {"id": place}}

    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
                     {"pharmatrace": "urn:pharmatrace:epcis:"}],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2025-03-05T09:45:00Z",
        "epcisBody": {"eventList": [
            {**receipt("urn:uuid:wire-1", links[:1]), "pharmatrace:mintedBy": "Example GmbH"},
            receipt("urn:uuid:wire-2", links[1:])]}}
    answer = lifecycle_pb2_grpc.LifecycleStub(issue_channel).ImportEpcis(
        lpb.ImportEpcisRequest(tenant=tenant, document=json.dumps(document)),
        timeout=RPC_TIMEOUT_S)
    assert answer.recorded == 2 and not answer.failures, answer
    return [f"(01){FOREIGN_GTIN}(21)W-{n}" for n in (1, 2)]


def _scanned_again(answer: vpb.VerifyBatchResponse, times: int) -> vpb.VerifyBatchResponse:
    """``answer`` after ``times`` more scans of each row whose scans are counted (genuine and
    known foreign codes: a count above zero)."""
    again = vpb.VerifyBatchResponse()
    again.CopyFrom(answer)
    for row, count in enumerate(answer.scan_counts):
        if count:
            again.scan_counts[row] += times
    return again


@pytest.mark.skipif(_wire is None, reason="the compiled extension is not built or "
                    "PHARMATRACE_PURE is set: both servers answer on the Python path")
def test_the_written_answer_is_the_python_path_s_message(
        api: Api, gs1: Gs1Product, nmpa: NmpaProduct, forge, issue_channel: grpc.Channel,
        verify_channel: grpc.Channel, pure_worker: tuple[WorkerPool, str]) -> None:
    """Genuine rows of two products (one without a batch: -1 indexes), a repaired scan, a hint,
    a bad signature, an unknown code, known foreign rows with and without a minter, nothing
    at all: the same answer from both paths, and an empty batch answers nothing."""
    tenant = gs1.tenant
    genuine = api.codes(tenant, gs1.gtin, 3, lot=gs1.lot)
    drug = api.codes(tenant, nmpa.nmpa_id, 1)[0]
    german = "".join(DE.get(c, c) for c in genuine[1])
    foreign = _foreign_minted(api, issue_channel, tenant)
    unknown = forge(tenant, Scheme.GS1, gs1.gtin, 1)[0]
    bad = genuine[2][:-1] + ("A" if genuine[2][-1] != "A" else "B")
    codes = [genuine[0], "(01)ÄÖÜ", drug, german, foreign[0], bad, "", unknown, foreign[1],
             genuine[2]]
    request = vpb.VerifyBatchRequest(tenant=tenant, codes=codes)

    pool, address = pure_worker
    with grpc.insecure_channel(address) as channel:
        pure = verification_pb2_grpc.VerificationStub(channel)
        reference = pure.VerifyBatch(request, timeout=RPC_TIMEOUT_S)
        empty = pure.VerifyBatch(vpb.VerifyBatchRequest(tenant=tenant), timeout=RPC_TIMEOUT_S)
    pool.stop(1.0)  # its scan statistics are written

    assert list(reference.scan_counts) == [1, 0, 1, 1, 1, 0, 0, 0, 1, 1]
    assert list(reference.product_indexes)[:3] == [0, -1, 1]
    assert list(reference.batch_indexes)[:3] == [0, -1, -1]
    assert list(reference.repaired_rows) == [3] and list(reference.hint_rows) == [1]
    assert list(reference.minted_rows) == [4] and list(reference.minted_by) == ["Example GmbH"]
    assert empty == vpb.VerifyBatchResponse()

    raw = verify_channel.unary_unary(BATCH_METHOD, request_serializer=vpb.VerifyBatchRequest
                                     .SerializeToString, response_deserializer=None)
    written = raw(request, timeout=RPC_TIMEOUT_S)
    assert vpb.VerifyBatchResponse.FromString(written) == _scanned_again(reference, 1)
    assert written == _scanned_again(reference, 1).SerializeToString()
    assert raw(vpb.VerifyBatchRequest(tenant=tenant), timeout=RPC_TIMEOUT_S) == b""

    streamed = list(api.verification.VerifyStream(iter([
        request, vpb.VerifyBatchRequest(tenant=tenant), request]), timeout=RPC_TIMEOUT_S))
    assert streamed == [_scanned_again(reference, 2), vpb.VerifyBatchResponse(),
                        _scanned_again(reference, 3)]
