"""Custody over real gRPC with real tokens: a party-bound credential acts only on what its
party holds, whichever write it calls."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from tests.integration.authz import rig
from tests.integration.authz.rig import (
    Secured,
    create_tenant,
    create_token,
    issue_codes,
    lifecycle,
    master_data,
)
from tracecore.credentials import Role

TENANT = "custody-a"
#: The authenticated servers of the authorization walk, started once for this module.
secured, served = rig.secured, rig.served


def refused(at: Secured, method: str, request: Message, token: str) -> list[str]:
    """The per-code refusals of a write that changed nothing."""
    outcome = at.call(f"/pharmatrace.v1.Lifecycle/{method}", request, token)
    assert outcome.code is grpc.StatusCode.OK, outcome
    response = outcome.responses[0]
    assert isinstance(response, lpb.LifecycleResponse)
    assert not response.changed, response
    return [f.reason for f in response.failures]


def test_party_tokens_cannot_destroy_disaggregate_or_dispense_what_others_hold(
        served: Secured) -> None:
    """The attacks of a pharmacy, a distributor and a line token on packs held by another party
    are each refused, naming the holder, and the holder's own token still acts."""
    at = served
    admin = create_tenant(at, TENANT)
    master_data(at, TENANT, admin)
    pharmacy, _ = create_token(at, TENANT, admin, Role.PHARMACY, party="PHARM-1")
    distributor, _ = create_token(at, TENANT, admin, Role.DISTRIBUTOR, party="DIST-1")
    line, _ = create_token(at, TENANT, admin, Role.LINE, party="PLANT")
    units = issue_codes(at, TENANT, admin, 6)
    case = issue_codes(at, TENANT, admin, 1)
    plant = lpb.EventContext(party_id="PLANT")
    lifecycle(at, "Commission", lpb.CommissionRequest(
        tenant=TENANT, codes=units, context=plant), line)
    lifecycle(at, "Commission", lpb.CommissionRequest(
        tenant=TENANT, codes=case, level=cpb.PACKAGING_LEVEL_CASE, context=plant), line)
    lifecycle(at, "Aggregate", lpb.AggregateRequest(
        tenant=TENANT, parent=case[0], children=units[:2], context=plant), line)
    lifecycle(at, "Ship", lpb.ShipRequest(
        tenant=TENANT, codes=[case[0], units[2]], destination="DIST-1", context=plant), line)
    lifecycle(at, "Receive", lpb.ReceiveRequest(
        tenant=TENANT, codes=[case[0], units[2]]), distributor)

    assert refused(at, "Destroy", lpb.DestroyRequest(
        tenant=TENANT, codes=units[2:3], stolen=True), pharmacy) == [
        "is held by DIST-1, not PHARM-1"]
    assert refused(at, "Destroy", lpb.DestroyRequest(
        tenant=TENANT, codes=units[3:4]), pharmacy) == ["is held by PLANT, not PHARM-1"]
    assert refused(at, "Destroy", lpb.DestroyRequest(
        tenant=TENANT, codes=units[3:4]), distributor) == ["is held by PLANT, not DIST-1"]
    assert refused(at, "Disaggregate", lpb.AggregateRequest(
        tenant=TENANT, parent=case[0], children=units[:1]), line) == [
        "is held by DIST-1, not PLANT"]
    assert refused(at, "Decommission", lpb.DecommissionRequest(
        tenant=TENANT, codes=units[:1], target=cpb.CODE_STATUS_DISPENSED), pharmacy) == [
        "is held by DIST-1, not PHARM-1"]

    destroyed = lifecycle(at, "Destroy", lpb.DestroyRequest(
        tenant=TENANT, codes=units[2:3], stolen=True), distributor)
    assert destroyed.changed == 1
