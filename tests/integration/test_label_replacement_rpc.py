"""A damaged label replaced, over real gRPC: refused until the tenant's policy allows it, then
the new code carries the pack on, the old verifies as replaced, and trace follows both ways."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product

Refused = Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]


def _policy(api: Api, tenant: str, on: bool) -> apb.SetTenantPolicyResponse:
    return api.admin.SetTenantPolicy(apb.SetTenantPolicyRequest(
        tenant=tenant, policy=apb.TenantPolicy(label_replacement=on)), timeout=RPC_TIMEOUT_S)


def _replace(lifecycle: lifecycle_pb2_grpc.LifecycleStub, tenant: str, old: str, new: str
             ) -> lpb.LifecycleResponse:
    return lifecycle.ReplaceCode(lpb.ReplaceCodeRequest(
        tenant=tenant, old_code=old, new_code=new, reason="label torn"), timeout=RPC_TIMEOUT_S)


def test_a_replaced_label_points_to_its_new_code_in_verify_and_trace(
    api: Api, gs1: Gs1Product, issue_channel: grpc.Channel, verify_channel: grpc.Channel,
    refused: Refused,
) -> None:
    """Off by default (EU rules); once on, the new code is ACTIVE in the old one's case, the old
    is VOIDED with replaced_by, and each trace names the other, the new one with the old's
    commissioning in its history."""
    lifecycle = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    trace = trace_pb2_grpc.TraceStub(verify_channel)
    tenant = gs1.tenant
    old, new = api.codes(tenant, gs1.gtin, 2, lot=gs1.lot)
    (case,) = api.codes(tenant, gs1.gtin, 1, lot=gs1.lot, level=cpb.PACKAGING_LEVEL_CASE)
    assert lifecycle.Commission(lpb.CommissionRequest(tenant=tenant, codes=[old, case]),
                                timeout=RPC_TIMEOUT_S).applied
    assert lifecycle.Aggregate(lpb.AggregateRequest(tenant=tenant, parent=case, children=[old]),
                               timeout=RPC_TIMEOUT_S).applied

    message = refused(grpc.StatusCode.FAILED_PRECONDITION, None,
                      lambda: _replace(lifecycle, tenant, old, new))
    assert "policy does not allow replacing labels" in message
    assert _policy(api, tenant, True).policy.label_replacement

    response = _replace(lifecycle, tenant, old, new)
    assert response.applied and not response.failures, response

    answer = api.verify(tenant, old)
    assert (answer.status, answer.replaced_by) == (cpb.CODE_STATUS_VOIDED, new)
    assert api.verify(tenant, new).status == cpb.CODE_STATUS_ACTIVE

    traced_old = trace.TraceCode(tpb.TraceCodeRequest(tenant=tenant, code=old),
                                 timeout=RPC_TIMEOUT_S)
    traced_new = trace.TraceCode(tpb.TraceCodeRequest(tenant=tenant, code=new),
                                 timeout=RPC_TIMEOUT_S)
    assert (traced_old.replaced_by, traced_new.replaces) == (new, old)
    assert list(traced_new.parents) == [case]
    kinds = [(e.kind, e.via) for e in traced_new.history]
    assert (lpb.EVENT_KIND_COMMISSION, old) in kinds
    replaced = [e for e in traced_new.history if e.kind == lpb.EVENT_KIND_REPLACE]
    assert [(e.replacement, e.reason) for e in replaced] == [(new, "label torn")]


def test_a_used_code_cannot_replace_a_label_and_the_old_stays_active(
    api: Api, gs1: Gs1Product, issue_channel: grpc.Channel
) -> None:
    """A new code already on a pack is refused with the reason; nothing changes."""
    lifecycle = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    _policy(api, gs1.tenant, True)
    old, used = api.codes(gs1.tenant, gs1.gtin, 2, lot=gs1.lot)
    assert lifecycle.Commission(lpb.CommissionRequest(tenant=gs1.tenant, codes=[old, used]),
                                timeout=RPC_TIMEOUT_S).applied
    response = _replace(lifecycle, gs1.tenant, old, used)
    assert not response.applied
    assert [f.reason for f in response.failures] == [
        "the new code is ACTIVE, not a fresh ISSUED one"]
    assert api.verify(gs1.tenant, old).status == cpb.CODE_STATUS_ACTIVE
