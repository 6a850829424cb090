"""Packs of an expired batch never reach the market: a batch already expired is refused when
it is registered, and a partner's commissioning that states a past expiry is refused per
event."""

from __future__ import annotations

import datetime as dt

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc

from tests.integration.conftest import GTIN, RPC_TIMEOUT_S, Api, Gs1Product
from tests.integration.epcis_documents import commissioning, document


def test_an_already_expired_batch_is_refused_naming_its_expiry(api: Api, gs1: Gs1Product,
                                                                refused) -> None:
    """AddBatch with an expiry before today is INVALID_ARGUMENT naming batch.expires_on and
    saying why; one expiring today is accepted."""
    today = dt.datetime.now(dt.UTC).date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    message = refused(grpc.StatusCode.INVALID_ARGUMENT, "batch.expires_on",
                      lambda: api.admin.AddBatch(apb.AddBatchRequest(
                          tenant=gs1.tenant, batch=cpb.Batch(product=GTIN, lot="OLD-1",
                                                             expires_on=yesterday)),
                          timeout=RPC_TIMEOUT_S))
    assert f"{yesterday} is before today" in message
    assert "already expired" in message
    added = api.admin.AddBatch(apb.AddBatchRequest(tenant=gs1.tenant, batch=cpb.Batch(
        product=GTIN, lot="TODAY-1", expires_on=today.isoformat())), timeout=RPC_TIMEOUT_S)
    assert added.batch.lot == "TODAY-1"


def test_an_epcis_commissioning_with_a_past_expiry_is_refused_per_event(
        api: Api, gs1: Gs1Product, issue_channel: grpc.Channel) -> None:
    """In a best-effort import, the commissioning that states a past expiry is refused with the
    reason, and the one with a valid expiry is applied."""
    api.admin.AddParty(apb.AddPartyRequest(tenant=gs1.tenant, party=cpb.Party(
        party_id="PLANT", name="Plant", kind=cpb.PARTY_KIND_PLANT)), timeout=RPC_TIMEOUT_S)
    codes = api.codes(gs1.tenant, gs1.gtin, 4, lot=gs1.lot)
    past = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30)).isoformat()
    text = document([
        commissioning(codes[:2], party="PLANT", lot=gs1.lot, expires_on=past),
        commissioning(codes[2:], party="PLANT", lot=gs1.lot, expires_on=gs1.expires_on),
    ])
    imported = lifecycle_pb2_grpc.LifecycleStub(issue_channel).ImportEpcis(
        lpb.ImportEpcisRequest(tenant=gs1.tenant, document=text, best_effort=True),
        timeout=RPC_TIMEOUT_S)
    assert imported.changed == 2
    assert {(f.event_index, f.reason) for f in imported.failures} == {
        (0, f"its expiry date {past} is past: expired packs are not commissioned")}
    statuses = [api.verify(gs1.tenant, code).status for code in codes]
    assert statuses == [cpb.CODE_STATUS_ISSUED] * 2 + [cpb.CODE_STATUS_ACTIVE] * 2
