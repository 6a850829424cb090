"""Party-bound credentials act only for their party; client streams are checked with no message
and on every message."""

from __future__ import annotations

import secrets

import grpc
import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import printing_pb2 as ppb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.authz import rig
from tests.integration.authz.rig import (
    GTIN,
    LINE_KEY,
    LOT,
    OK,
    PERMISSION_DENIED,
    RPCS,
    UNAUTHENTICATED,
    Secured,
    World,
    bearer,
    create_token,
    issue_codes,
    lifecycle,
    message_bytes,
)
from tests.integration.conftest import RPC_TIMEOUT_S
from tracecore.credentials import Role

# The servers and tenants of rig.py, started for this module.
secured, served, world = rig.secured, rig.served, rig.world


# -- parties and streams -----------------------------------------------------------------------


def test_a_party_bound_credential_acts_only_for_its_party(served: Secured, world: World) -> None:
    """A party's token names no other party (context, events, scans), fills in its own."""
    a, admin = world.a, world.admin
    token, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-1")
    codes = issue_codes(served, a, admin, 3)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Ship", lpb.ShipRequest(
        tenant=a, codes=codes, destination="DIST-1",
        context=lpb.EventContext(party_id="PLANT")), admin)

    other = served.call("/pharmatrace.v1.Lifecycle/Receive", lpb.ReceiveRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="DIST-2")), token)
    assert other.code is PERMISSION_DENIED and "context.party_id" in other.details, other
    captured = served.call("/pharmatrace.v1.Lifecycle/CaptureEvents", lpb.CaptureEventsRequest(
        tenant=a, events=[
            lpb.LifecycleEvent(kind=lpb.EVENT_KIND_RECEIVE, codes=codes[:1]),
            lpb.LifecycleEvent(kind=lpb.EVENT_KIND_RECEIVE, codes=codes[1:2],
                               context=lpb.EventContext(party_id="DIST-2"))]), token)
    assert captured.code is PERMISSION_DENIED, captured
    assert "events[1].context.party_id" in captured.details
    imported = served.call("/pharmatrace.v1.Lifecycle/ImportEpcis", lpb.ImportEpcisRequest(
        tenant=a, document="{}"), token)
    assert imported.code is PERMISSION_DENIED and "CaptureEvents" in imported.details
    scanned = served.call("/pharmatrace.v1.Verification/VerifyBatch", vpb.VerifyBatchRequest(
        tenant=a, codes=codes[:1], context=vpb.ScanContext(party_id="PHARM-1")), token)
    assert scanned.code is PERMISSION_DENIED and "context.party_id" in scanned.details

    lifecycle(served, "Receive", lpb.ReceiveRequest(tenant=a, codes=codes), token)
    traced = served.ok("/pharmatrace.v1.Trace/TraceCode",
                       tpb.TraceCodeRequest(tenant=a, code=codes[0]), admin)
    assert isinstance(traced, tpb.TraceCodeResponse)
    assert (traced.holder, traced.in_transit) == ("DIST-1", False)
    assert traced.history[-1].party_id == "DIST-1"


def test_a_pool_is_printed_only_by_whoever_may_hand_its_codes_back(served: Secured,
                                                                   world: World) -> None:
    """A line credential prints its own pool and its party's, not another line's; the tenant's
    admin prints any."""
    a, admin = world.a, world.admin
    own, _ = create_token(served, a, admin, Role.LINE, party="PLANT")
    same_party, _ = create_token(served, a, admin, Role.LINE, party="PLANT")
    other, _ = create_token(served, a, admin, Role.LINE)
    request_id = f"req-{secrets.token_hex(8)}"
    issued = served.call("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
        tenant=a, product=GTIN, lot=LOT, count=3, request_id=request_id), own)
    assert issued.code is OK, issued
    path = "/pharmatrace.v1.PrintJobs/PrintPool"
    request = ppb.PrintPoolRequest(tenant=a, request_id=request_id, format=ppb.PRINT_FORMAT_CSV,
                                   line_key=LINE_KEY)
    for token in (own, same_party, admin):
        printed = served.call(path, request, token)
        assert printed.code is OK and printed.responses[0].labels == 3, printed  # type: ignore[attr-defined]
    denied = served.call(path, request, other)
    assert denied.code is PERMISSION_DENIED, denied
    assert "request_id" in denied.details and "another credential" in denied.details


def test_a_distributor_traces_only_what_was_in_its_custody(served: Secured,
                                                          world: World) -> None:
    """A distributor's token traces packs it held and lists its own events, nothing else."""
    a, admin = world.a, world.admin
    token, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-1")
    codes = issue_codes(served, a, admin, 2)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Ship", lpb.ShipRequest(
        tenant=a, codes=codes[:1], destination="DIST-1",
        context=lpb.EventContext(party_id="PLANT")), admin)

    mine = served.call("/pharmatrace.v1.Trace/TraceCode",
                       tpb.TraceCodeRequest(tenant=a, code=codes[0]), token)
    assert mine.code is OK, mine
    other = served.call("/pharmatrace.v1.Trace/TraceCode",
                        tpb.TraceCodeRequest(tenant=a, code=codes[1]), token)
    assert other.code is PERMISSION_DENIED and "custody" in other.details, other
    elsewhere = served.call("/pharmatrace.v1.Trace/ListEvents",
                            tpb.ListEventsRequest(tenant=a, party_id="PLANT"), token)
    assert elsewhere.code is PERMISSION_DENIED and "party_id" in elsewhere.details, elsewhere
    own = served.ok("/pharmatrace.v1.Trace/ListEvents", tpb.ListEventsRequest(tenant=a), token)
    assert isinstance(own, tpb.ListEventsResponse) and own.events
    assert all("DIST-1" in (e.party_id, e.destination) for e in own.events)


def test_a_partys_credential_checks_only_the_bills_its_party_is_on(served: Secured,
                                                                   world: World) -> None:
    """A bill shipped from PLANT to DIST-1: DIST-1's token checks it, DIST-2's token gets the
    answer of a bill never used (nothing shipped, nothing received), the admin sees it all."""
    a, admin = world.a, world.admin
    dist1, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-1")
    dist2, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-2")
    codes = issue_codes(served, a, admin, 3)
    bill = cpb.BusinessDocument(type="desadv", id=f"DA-{secrets.token_hex(4)}")
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Ship", lpb.ShipRequest(
        tenant=a, codes=codes, destination="DIST-1", documents=[bill],
        context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Receive", lpb.ReceiveRequest(tenant=a, codes=codes[:2],
                                                    documents=[bill]), dist1)

    def check(token: str) -> tpb.CheckReceiptResponse:
        answer = served.ok("/pharmatrace.v1.Trace/CheckReceipt",
                           tpb.CheckReceiptRequest(tenant=a, document=bill), token)
        assert isinstance(answer, tpb.CheckReceiptResponse)
        return answer

    for token in (dist1, admin):
        mine = check(token)
        assert (mine.shipped, mine.received, list(mine.missing)) == (3, 2, codes[2:])
    other = check(dist2)
    assert (other.shipped, other.received, list(other.missing)) == (0, 0, [])
    assert not other.ship_events and not other.receive_events


def test_a_client_stream_is_checked_with_no_message_and_on_every_message(
        served: Secured, world: World) -> None:
    """An empty client stream needs a credential; a later message for another tenant is refused."""
    verify_stream = RPCS["/pharmatrace.v1.Verification/VerifyStream"]
    capture = RPCS["/pharmatrace.v1.Lifecycle/CaptureEvents"]
    for rpc, channel in ((verify_stream, served.verify), (capture, served.issue)):
        streams = {None: UNAUTHENTICATED, world.tokens[Role.LINE]: None}
        for token, expected in streams.items():
            call = (channel.stream_stream if rpc.method.server_streaming
                    else channel.stream_unary)(rpc.path)
            try:
                result = call(iter([]), metadata=bearer(token), timeout=RPC_TIMEOUT_S)
                if rpc.method.server_streaming:
                    list(result)
                code = OK
            except grpc.RpcError as error:
                code = error.code()  # type: ignore[attr-defined]
            if expected is None:
                assert code not in (UNAUTHENTICATED, PERMISSION_DENIED), (rpc.path, code)
            else:
                assert code is expected, (rpc.path, code)
    two = [vpb.VerifyBatchRequest(tenant=world.a, codes=world.active[:1]),
           vpb.VerifyBatchRequest(tenant=world.b, codes=world.active[:1])]
    call = served.verify.stream_stream(verify_stream.path, message_bytes,
                                       vpb.VerifyBatchResponse.FromString)
    with pytest.raises(grpc.RpcError) as caught:
        list(call(iter(two), metadata=bearer(world.admin), timeout=RPC_TIMEOUT_S))
    assert caught.value.code() is PERMISSION_DENIED  # type: ignore[attr-defined]
