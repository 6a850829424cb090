"""Attacks of the hardening review over real gRPC with authentication on: a line voiding
another credential's pool, a pharmacy dispensing what it does not hold, and a stranger probing
tenant names through public verification."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.authz import rig
from tests.integration.authz.rig import (
    GTIN,
    LOT,
    RPCS,
    Secured,
    bearer,
    create_tenant,
    create_token,
    invoke,
    lifecycle,
    master_data,
)
from tests.integration.conftest import RPC_TIMEOUT_S
from tracecore.codes import parse
from tracecore.credentials import Role
from tracecore.ledger.env import Env
from tracecore.ledger.observations import DATABASES
from tracecore.ledger.tenants import OBSERVATIONS, TENANTS
from verify_svc.workers import WorkerConfig, WorkerPool

OK = grpc.StatusCode.OK
#: The authenticated servers of the authorization walk, started once for this module.
secured, served = rig.secured, rig.served


def request_pool(at: Secured, tenant: str, token: str, count: int) -> tuple[str, list[str]]:
    """(request id, codes) of a new pool requested with ``token``."""
    request_id = f"req-{secrets.token_hex(8)}"
    outcome = at.call("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
        tenant=tenant, product=GTIN, lot=LOT, count=count, request_id=request_id), token,
        channel=at.issue)
    assert outcome.code is OK, outcome
    return request_id, [f"(01){c.product}(21){s}" for c in outcome.responses
                        for s in c.serials]  # type: ignore[attr-defined]


def give_back(at: Secured, tenant: str, token: str, codes: list[str]
              ) -> ipb.ReturnCodesResponse:
    outcome = at.call("/pharmatrace.v1.CodeIssuance/ReturnCodes", ipb.ReturnCodesRequest(
        tenant=tenant, codes=codes, reason=ipb.RETURN_REASON_UNUSED), token, channel=at.issue)
    assert outcome.code is OK, outcome
    response = outcome.responses[0]
    assert isinstance(response, ipb.ReturnCodesResponse)
    return response


def test_only_the_requester_its_party_or_the_admin_returns_a_pools_codes(
        served: Secured) -> None:
    """A line credential cannot void the unused codes of a pool another credential requested;
    the requester, another credential of its party and the tenant's admin can."""
    tenant = "harden-pools"
    admin = create_tenant(served, tenant)
    master_data(served, tenant, admin)
    line, _ = create_token(served, tenant, admin, Role.LINE, party="PLANT")
    same_plant, _ = create_token(served, tenant, admin, Role.LINE, party="PLANT")
    stranger, _ = create_token(served, tenant, admin, Role.LINE)
    request_id, codes = request_pool(served, tenant, line, 4)

    refused = give_back(served, tenant, stranger, codes[:1])
    assert refused.voided == 0
    assert [f.reason for f in refused.failures] == [
        "its pool was requested by another credential (of PLANT): only it, its party or the "
        "tenant's admin may hand its codes back"]
    pool = served.call("/pharmatrace.v1.CodeIssuance/GetPool", ipb.GetPoolRequest(
        tenant=tenant, request_id=request_id), admin, channel=served.issue).responses[0]
    assert pool.pool.returned == 0  # type: ignore[attr-defined]

    assert give_back(served, tenant, line, codes[:1]).voided == 1
    assert give_back(served, tenant, same_plant, codes[1:2]).voided == 1
    assert give_back(served, tenant, admin, codes[2:3]).voided == 1
    captured = served.call("/pharmatrace.v1.Lifecycle/CaptureEvents", lpb.CaptureEventsRequest(
        tenant=tenant, best_effort=True, events=[lpb.LifecycleEvent(
            kind=lpb.EVENT_KIND_VOID, codes=codes[3:])]), stranger, channel=served.issue)
    assert captured.code is OK, captured
    assert captured.responses[0].changed == 0  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def public(secured: Secured) -> Iterator[grpc.Channel]:
    """A verification worker with public verification on and a rate no test reaches."""
    workers = WorkerPool(WorkerConfig(secured.codegen.data.root, "127.0.0.1", 0, dev_keys=True,
                                      tls=None, grace_s=1.0, authenticate=True,
                                      public_verify=True, public_rate=1000.0), workers=1)
    port = workers.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    yield channel
    channel.close()
    workers.stop(1.0)


def test_public_verify_answers_an_unknown_tenant_like_a_code_it_never_minted(
        served: Secured, public: grpc.Channel) -> None:
    """An anonymous Verify naming a tenant that does not exist answers exactly what a real
    tenant answers for a code it never minted (and for text that is no code): no NOT_FOUND
    that would let a stranger list the tenants."""
    tenant = "harden-real"
    admin = create_tenant(served, tenant)
    master_data(served, tenant, admin)
    _, codes = request_pool(served, tenant, admin, 1)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=tenant, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    serial = codes[0].split("(21)")[1]
    forged = f"(01){GTIN}(21){serial[:-1]}{'A' if serial[-1] != 'A' else 'B'}"
    verify = RPCS["/pharmatrace.v1.Verification/Verify"]
    for code in (forged, "not a code"):
        real = invoke(public, verify, vpb.VerifyRequest(tenant=tenant, code=code))
        ghost = invoke(public, verify, vpb.VerifyRequest(tenant="no-such-tenant", code=code))
        assert (real.code, ghost.code) == (OK, OK), (real, ghost)
        assert real.responses == ghost.responses
        assert real.responses[0].verdict in (  # type: ignore[attr-defined]
            vpb.VERDICT_BAD_SIGNATURE, vpb.VERDICT_INVALID_FORMAT)
    genuine = invoke(public, verify, vpb.VerifyRequest(tenant=tenant, code=codes[0]))
    assert genuine.responses[0].verdict == vpb.VERDICT_GENUINE  # type: ignore[attr-defined]


def test_dispensing_what_the_party_does_not_hold_is_refused_or_allowed_and_alerted_by_policy(
        served: Secured) -> None:
    """A pharmacy dispensing a pack still inside a distributor's case is refused by default;
    with the tenant's "dispense elsewhere" policy on, it is dispensed and a DISPENSED_ELSEWHERE
    alert names the pack, the pharmacy and the holder in the tenant's alert list."""
    tenant = "harden-elsewhere"
    admin = create_tenant(served, tenant)
    master_data(served, tenant, admin)
    line, _ = create_token(served, tenant, admin, Role.LINE, party="PLANT")
    distributor, _ = create_token(served, tenant, admin, Role.DISTRIBUTOR, party="DIST-1")
    pharmacy, _ = create_token(served, tenant, admin, Role.PHARMACY, party="PHARM-1")
    _, codes = request_pool(served, tenant, line, 3)
    units, case = codes[:2], codes[2]
    plant = lpb.EventContext(party_id="PLANT")
    lifecycle(served, "Commission", lpb.CommissionRequest(tenant=tenant, codes=units,
                                                          context=plant), line)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=tenant, codes=[case], level=cpb.PACKAGING_LEVEL_CASE, context=plant), line)
    lifecycle(served, "Aggregate", lpb.AggregateRequest(
        tenant=tenant, parent=case, children=units, context=plant, partial=True), line)
    lifecycle(served, "Ship", lpb.ShipRequest(tenant=tenant, codes=[case], destination="DIST-1",
                                              context=plant), line)
    lifecycle(served, "Receive", lpb.ReceiveRequest(tenant=tenant, codes=[case]), distributor)
    dispense = lpb.DecommissionRequest(tenant=tenant, codes=units[:1],
                                       target=cpb.CODE_STATUS_DISPENSED)

    refused = served.call("/pharmatrace.v1.Lifecycle/Decommission", dispense, pharmacy)
    assert refused.code is OK
    assert [f.reason for f in refused.responses[0].failures] == [  # type: ignore[attr-defined]
        "is held by DIST-1, not PHARM-1"]

    policy = served.ok("/pharmatrace.v1.Admin/SetTenantPolicy", apb.SetTenantPolicyRequest(
        tenant=tenant, policy=apb.TenantPolicy(dispense_elsewhere=True)), admin)
    assert isinstance(policy, apb.SetTenantPolicyResponse)
    assert (policy.policy.dispense_elsewhere, policy.policy.label_replacement) == (True, False)
    dispensed = lifecycle(served, "Decommission", dispense, pharmacy)
    assert dispensed.changed == 1
    detail = f"{units[0]} dispensed by PHARM-1 while DIST-1 held it"
    assert dispensed.notes == [f"DISPENSED_ELSEWHERE: {detail}"]

    listed = served.ok("/pharmatrace.v1.Trace/ListAlerts", tpb.ListAlertsRequest(
        tenant=tenant, kind=vpb.ALERT_KIND_DISPENSED_ELSEWHERE), admin)
    assert isinstance(listed, tpb.ListAlertsResponse)
    assert [(a.code, a.party_id, a.product, a.lot, a.detail) for a in listed.alerts] == [
        (units[0], "PHARM-1", GTIN, LOT, detail)]
    assert served.ok("/pharmatrace.v1.Trace/ListAlerts", tpb.ListAlertsRequest(
        tenant=tenant), admin).alerts[0].kind == (  # type: ignore[attr-defined]
        vpb.ALERT_KIND_DISPENSED_ELSEWHERE)
    other = served.call("/pharmatrace.v1.Lifecycle/Destroy", lpb.DestroyRequest(
        tenant=tenant, codes=units[1:]), pharmacy)
    assert [f.reason for f in other.responses[0].failures] == [  # type: ignore[attr-defined]
        "is held by DIST-1, not PHARM-1"]


def test_a_public_client_scanning_a_code_again_the_same_day_counts_once(
        served: Secured, public: grpc.Channel) -> None:
    """Thirty anonymous Verifies of one code from one client answer a scan count of 1 and
    raise no CLONE_SUSPECTED (more than the 20 scans that would); a scan with the tenant's
    own credential still counts as another scan."""
    tenant = "harden-public-scans"
    admin = create_tenant(served, tenant)
    master_data(served, tenant, admin)
    _, codes = request_pool(served, tenant, admin, 1)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=tenant, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    verify = RPCS["/pharmatrace.v1.Verification/Verify"]
    for _ in range(30):
        answer = invoke(public, verify, vpb.VerifyRequest(tenant=tenant, code=codes[0]))
        assert answer.code is OK, answer
        response = answer.responses[0]
        assert isinstance(response, vpb.VerifyResponse)
        assert response.verdict == vpb.VERDICT_GENUINE
        assert response.scan_count == 1
        assert vpb.ALERT_KIND_CLONE_SUSPECTED not in response.alerts
    own = invoke(public, verify, vpb.VerifyRequest(tenant=tenant, code=codes[0]),
                 metadata=bearer(admin))
    assert own.code is OK, own
    assert own.responses[0].scan_count == 2  # type: ignore[attr-defined]


def test_scan_statistics_on_disk_hold_no_serial(served: Secured, public: grpc.Channel,
                                                tmp_path: Path) -> None:
    """Once a worker has written the statistics of scanned codes, their file, and its copy in
    a backup made with `pharmatrace backup`, hold neither the serials nor the codes'
    GTIN-and-serial keys: a copy of them names no pack."""
    tenant = "harden-stats-at-rest"
    admin = create_tenant(served, tenant)
    master_data(served, tenant, admin)
    _, codes = request_pool(served, tenant, admin, 3)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=tenant, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    verify = RPCS["/pharmatrace.v1.Verification/Verify"]
    for code in codes:
        assert invoke(public, verify, vpb.VerifyRequest(tenant=tenant, code=code),
                      metadata=bearer(admin)).code is OK
    path = served.codegen.data.root / TENANTS / tenant / OBSERVATIONS
    deadline = time.monotonic() + RPC_TIMEOUT_S
    stored = 0
    while stored < len(codes) and time.monotonic() < deadline:
        time.sleep(0.05)
        env = Env(path, DATABASES, owner=tenant, readonly=True)
        try:
            with env.read() as txn:
                stored = txn.stat(env.dbs["scans"])["entries"]
        finally:
            env.close()
    assert stored == 3
    backup = tmp_path / "backup"
    made = subprocess.run(
        [str(Path(sys.executable).with_name("pharmatrace")), "backup", str(backup), "--data",
         str(served.codegen.data.root), "--tenant", tenant, "--dev"],
        capture_output=True, text=True, timeout=RPC_TIMEOUT_S * 6, check=False)
    assert made.returncode == 0, made.stderr
    for copy in (path / "data.mdb", backup / OBSERVATIONS / "data.mdb.age"):
        content = copy.read_bytes()
        for code in codes:
            assert code.split("(21)")[1].encode() not in content, copy
            assert parse(code).code.key() not in content, copy
