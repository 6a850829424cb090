"""Pack hierarchies over real gRPC: a product registered with its levels and ratios, and
aggregations counted against them, a short container allowed only when marked partial."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc

from tests.integration.conftest import RPC_TIMEOUT_S, Api
from tests.integration.packing_line import PackingLine

GTIN, CASE_GTIN, LOT = "09501101530027", "09501101530010", "LOT-H1"
UNIT, BUNDLE, CASE = (cpb.PACKAGING_LEVEL_UNIT, cpb.PACKAGING_LEVEL_BUNDLE,
                      cpb.PACKAGING_LEVEL_CASE)


@pytest.fixture
def line(api: Api, tenant: str, issue_channel: grpc.Channel) -> PackingLine:
    today = dt.date.today()
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
        gtin=GTIN, name="Paracetamol 500 mg tablets", hierarchy=[
            cpb.PackLevel(level=BUNDLE, quantity=3),
            cpb.PackLevel(level=CASE, quantity=2, gtin=CASE_GTIN)])), timeout=RPC_TIMEOUT_S)
    api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
        product=GTIN, lot=LOT, expires_on=(today + dt.timedelta(days=700)).isoformat())),
        timeout=RPC_TIMEOUT_S)
    return PackingLine(api, tenant, lifecycle_pb2_grpc.LifecycleStub(issue_channel), GTIN, LOT)


def test_the_registered_hierarchy_comes_back_with_the_product(line: PackingLine) -> None:
    """ListProducts shows the levels, ratios and the case's own GTIN as registered."""
    page = line.api.admin.ListProducts(apb.ListProductsRequest(tenant=line.tenant),
                                       timeout=RPC_TIMEOUT_S)
    (product,) = [p for p in page.products if p.gtin == GTIN]
    assert [(lv.level, lv.quantity, lv.gtin) for lv in product.hierarchy] == [
        (BUNDLE, 3, ""), (CASE, 2, CASE_GTIN)]


def test_a_short_bundle_is_refused_naming_the_ratio_and_the_bundle_stays_empty(
    line: PackingLine,
) -> None:
    """2 units into a bundle of 3: nothing applied, the refusal says the ratio and the way out;
    the same 2 marked partial go in."""
    (bundle,) = line.packs(1, BUNDLE)
    units = line.packs(2, UNIT)
    response = line.aggregate(bundle, units)
    assert not response.applied
    assert [f.reason for f in response.failures] == [
        "bundle holds 3 units; 2 given; mark it partial"]
    assert line.aggregate(bundle, units, partial=True).applied


def test_a_full_case_goes_in_and_an_overfull_one_is_refused_even_when_partial(
    line: PackingLine,
) -> None:
    """Two full bundles make a case; a third bundle into it is refused, partial or not."""
    (case,) = line.packs(1, CASE)
    assert line.aggregate(case, [line.bundle(), line.bundle()]).applied
    response = line.aggregate(case, [line.bundle()], partial=True)
    assert not response.applied
    assert [f.reason for f in response.failures] == ["case holds 2 bundles; 3 given"]


def test_bulk_capture_carries_partial_per_event(line: PackingLine) -> None:
    """CaptureEvents: a short case marked partial is recorded, an unmarked one refused."""
    short, marked = line.packs(2, CASE)
    events = [lpb.LifecycleEvent(kind=lpb.EVENT_KIND_AGGREGATE, parent=marked,
                                 codes=[line.bundle()], partial=True),
              lpb.LifecycleEvent(kind=lpb.EVENT_KIND_AGGREGATE, parent=short,
                                 codes=[line.bundle()])]
    response = line.lifecycle.CaptureEvents(
        iter([lpb.CaptureEventsRequest(tenant=line.tenant, events=events, best_effort=True)]),
        timeout=RPC_TIMEOUT_S)
    assert response.recorded == 1
    assert [(f.event_index, f.reason) for f in response.failures] == [
        (1, "case holds 2 bundles; 1 given; mark it partial")]
