"""One tenant's large EPCIS import does not stall another tenant: the document is read away
from the event loop, bounded in size, and a hostile nesting is a clear refusal."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Make
from tests.integration.epcis_documents import commissioning, document

EVENTS = 10_000


def _import(stub: lifecycle_pb2_grpc.LifecycleStub, tenant: str, text: str,
            done: Future[tuple[lpb.ImportEpcisResponse, float]]) -> None:
    try:
        response = stub.ImportEpcis(lpb.ImportEpcisRequest(tenant=tenant, document=text),
                                    timeout=300)
        done.set_result((response, time.monotonic()))
    except grpc.RpcError as exc:
        done.set_exception(exc)


def test_another_tenants_calls_are_answered_while_a_large_import_runs(
        api: Api, make: Make, issue_channel: grpc.Channel) -> None:
    """While tenant A imports 10,000 events, tenant B's GetPool and Verify keep being answered:
    many complete before the import does, and none waits anywhere near as long as the import
    takes."""
    a, b = make.tenant(), make.tenant()
    product_a, product_b = make.gs1(a), make.gs1(b)
    api.admin.AddParty(apb.AddPartyRequest(tenant=a, party=cpb.Party(
        party_id="PLANT", name="Plant", kind=cpb.PARTY_KIND_PLANT)), timeout=RPC_TIMEOUT_S)
    codes = api.codes(a, product_a.gtin, EVENTS, lot=product_a.lot)
    text = document([commissioning([code], party="PLANT", lot=product_a.lot,
                                   expires_on=product_a.expires_on) for code in codes])
    pool_b = api.new_request_id()
    code_b = api.codes(b, product_b.gtin, 1, lot=product_b.lot, request_id=pool_b)[0]
    # B's first calls (tenant B opened by the verification worker) are made before the import:
    # what is timed below is what the import costs them.
    assert api.verify(b, code_b).status == cpb.CODE_STATUS_ISSUED

    done: Future[tuple[lpb.ImportEpcisResponse, float]] = Future()
    started = time.monotonic()
    thread = threading.Thread(target=_import, args=(
        lifecycle_pb2_grpc.LifecycleStub(issue_channel), a, text, done))
    thread.start()
    answered: list[tuple[float, float]] = []     # (start, end) of each of B's calls
    while not done.done():
        call = time.monotonic()
        assert api.pool(b, pool_b).issued == 1
        assert api.verify(b, code_b).status == cpb.CODE_STATUS_ISSUED
        answered.append((call, time.monotonic()))
    thread.join()
    response, finished = done.result()
    assert response.recorded == EVENTS and response.changed == EVENTS

    took = finished - started
    during = [end for _, end in answered if end < finished]
    assert len(during) >= 10, (len(during), took)
    slowest = max(end - call for call, end in answered)
    assert slowest < took / 10, (slowest, took)


def test_a_document_nested_100000_deep_is_invalid_argument(api: Api, tenant: str,
                                                           issue_channel: grpc.Channel,
                                                           refused) -> None:
    """A 100,000-deep JSON document answers INVALID_ARGUMENT naming the document, not
    INTERNAL."""
    deep = "[" * 100_000 + "]" * 100_000
    stub = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    message = refused(grpc.StatusCode.INVALID_ARGUMENT, "document", lambda: stub.ImportEpcis(
        lpb.ImportEpcisRequest(tenant=tenant, document=deep), timeout=RPC_TIMEOUT_S))
    assert "nested too deeply" in message


def test_a_document_over_the_size_limit_is_refused_naming_the_limit(
        tenant: str, issue_channel: grpc.Channel, refused) -> None:
    """A document larger than the server's limit (16 MiB by default) is INVALID_ARGUMENT
    naming the limit and the setting that raises it, before any of it is parsed."""
    huge = '{"x": "' + "a" * (16 << 20) + '"}'
    stub = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    message = refused(grpc.StatusCode.INVALID_ARGUMENT, "document", lambda: stub.ImportEpcis(
        lpb.ImportEpcisRequest(tenant=tenant, document=huge), timeout=RPC_TIMEOUT_S))
    assert f"limit of {16 << 20:,} bytes" in message and "--max-import-mib" in message
