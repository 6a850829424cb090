"""Refused calls are seen: each one in the tenant's audit trail or the server's security log,
counted by reason, a burst of them raised as an alert the tenant's admin lists and watches, and
the address slowed down after it. Real servers with authentication on, a tight burst policy
(5 refusals a minute) set through the environment before they start.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import trace_pb2_grpc
from pharmatrace.v1 import verification_pb2 as vpb
from prometheus_client import CollectorRegistry

from codegen_svc import app as codegen_app
from pharmatrace_cli.oversight import register
from tests.integration.authz.rig import (
    GHOST,
    OK,
    PERMISSION_DENIED,
    RPCS,
    UNAUTHENTICATED,
    bearer,
    environment,
    invoke,
    operator_token,
)
from tests.integration.conftest import RPC_TIMEOUT_S, _LoopThread
from tracecore.clock import now_ms
from tracecore.keys import KeySource
from tracecore.ledger import security_log
from tracerpc.metrics import Metrics
from verify_svc.workers import WorkerConfig, WorkerPool

BURST = 5
FAKE_SECRET = "s" * 43
LIST_TOKENS = RPCS["/pharmatrace.v1.Admin/ListTokens"]
LIST_PRODUCTS = RPCS["/pharmatrace.v1.Admin/ListProducts"]
VERIFY = RPCS["/pharmatrace.v1.Verification/Verify"]
POLICY = {"PHARMATRACE_REFUSAL_BURST": str(BURST), "PHARMATRACE_REFUSAL_WINDOW_S": "60",
          "PHARMATRACE_REFUSAL_SLOW_S": "60", "PHARMATRACE_REFUSAL_DELAY_MS": "50"}


@dataclass
class Door:
    """Both servers, one tenant with an admin and a regulator token, the issuance metrics."""

    data: Path
    issue: grpc.Channel
    verify: grpc.Channel
    issue_address: str
    verify_address: str
    registry: CollectorRegistry
    tenant: str
    admin: str
    regulator: str
    codegen: codegen_app.Codegen

    def refusals(self, reason: str) -> float:
        return self.registry.get_sample_value("pharmatrace_refusals_total",
                                              {"reason": reason}) or 0.0

    def audit(self) -> list[tuple[str, str, str]]:
        """(method, status, summary) of the tenant's audit records."""
        return [(r.method.rsplit("/", 1)[1], r.status, r.summary)
                for r in self.codegen.data.get(self.tenant).access.audit_records()]

    def alerts(self) -> list[tpb.Alert]:
        stub = trace_pb2_grpc.TraceStub(self.verify)
        return list(stub.ListAlerts(tpb.ListAlertsRequest(
            tenant=self.tenant, kind=vpb.ALERT_KIND_ACCESS_REFUSED),
            metadata=bearer(self.admin), timeout=RPC_TIMEOUT_S).alerts)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    data = tmp_path_factory.mktemp("refusals-data")
    registry = CollectorRegistry()
    loop = _LoopThread()
    with environment(**POLICY):
        codegen = loop.run(codegen_app.start(data, KeySource.dev(), "127.0.0.1:0",
                                             Metrics(registry), tls=None, authenticate=True))
        workers = WorkerPool(WorkerConfig(data, "127.0.0.1", 0, dev_keys=True, tls=None,
                                          grace_s=1.0, authenticate=True), workers=1)
        verify_port = workers.start()
    issue_address, verify_address = f"127.0.0.1:{codegen.port}", f"127.0.0.1:{verify_port}"
    issue, verify = grpc.insecure_channel(issue_address), grpc.insecure_channel(verify_address)
    try:
        created = invoke(issue, RPCS["/pharmatrace.v1.Admin/CreateTenant"],
                         apb.CreateTenantRequest(tenant="r1", name="R1 Pharma"),
                         metadata=bearer(operator_token(codegen)))
        admin = created.responses[0].admin_token
        regulator = invoke(issue, RPCS["/pharmatrace.v1.Admin/CreateToken"],
                           apb.CreateTokenRequest(tenant="r1", role=apb.ROLE_REGULATOR),
                           metadata=bearer(admin)).responses[0].token
        yield Door(data, issue, verify, issue_address, verify_address, registry, "r1", admin,
                   regulator, codegen)
    finally:
        issue.close()
        verify.close()
        workers.stop(1.0)
        loop.run(codegen.stop(1.0))
        loop.close()


def _token(door: Door, **options: object) -> tuple[str, str]:
    """A new distributor token of the tenant and its credential id."""
    made = invoke(door.issue, RPCS["/pharmatrace.v1.Admin/CreateToken"],
                  apb.CreateTokenRequest(tenant=door.tenant, role=apb.ROLE_DISTRIBUTOR,
                                         **options),  # type: ignore[arg-type]
                  metadata=bearer(door.admin)).responses[0]
    return made.token, made.credential.credential_id


def _wrong(token: str) -> str:
    """The same token id with another secret."""
    head, _, secret = token.rpartition(".")
    return f"{head}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


def test_each_refused_call_is_in_the_tenants_trail_without_its_secret(door: Door) -> None:
    """A wrong, revoked and expired token, and a read the role table refuses: each leaves an
    audit record in the tenant naming the reason, the credential id and the address, and is
    counted by reason; no secret is written anywhere."""
    token, token_id = _token(door)
    revoked, revoked_id = _token(door)
    assert invoke(door.issue, RPCS["/pharmatrace.v1.Admin/RevokeToken"], apb.RevokeTokenRequest(
        tenant=door.tenant, credential_id=revoked_id), metadata=bearer(door.admin)).code is OK
    expiring, expiring_id = _token(door, expires_at_ms=now_ms() + 1_000)
    time.sleep(1.2)
    before = {r: door.refusals(r) for r in ("unknown_token", "revoked", "expired", "role")}

    request = apb.ListProductsRequest(tenant=door.tenant)
    for presented, words in ((_wrong(token), "unknown API token"),
                             (revoked, "credential revoked"), (expiring, "credential expired")):
        outcome = invoke(door.issue, LIST_PRODUCTS, request, metadata=bearer(presented))
        assert (outcome.code, outcome.details) == (UNAUTHENTICATED, words)
    refused = invoke(door.issue, LIST_TOKENS, apb.ListTokensRequest(tenant=door.tenant),
                     metadata=bearer(door.regulator))
    assert refused.code is PERMISSION_DENIED

    records = [r for r in door.audit() if r[1] in ("UNAUTHENTICATED", "PERMISSION_DENIED")]
    summaries = [summary for _, _, summary in records[-4:]]
    assert [(m, s) for m, s, _ in records[-4:]] == [
        ("ListProducts", "UNAUTHENTICATED"), ("ListProducts", "UNAUTHENTICATED"),
        ("ListProducts", "UNAUTHENTICATED"), ("ListTokens", "PERMISSION_DENIED")]
    assert summaries[0].startswith(f"refused unknown_token: token {token_id} from ipv4:127.0.0.1")
    assert summaries[1].startswith(f"refused revoked: token {revoked_id} ")
    assert summaries[2].startswith(f"refused expired: token {expiring_id} ")
    assert summaries[3].startswith("refused role: ") and "(regulator)" in summaries[3]
    assert {r: door.refusals(r) - before[r] for r in before} == {
        "unknown_token": 1, "revoked": 1, "expired": 1, "role": 1}
    log = (door.data / security_log.FILE).read_text(encoding="utf-8")
    for secret_bearer in (token, revoked, expiring, door.regulator):
        secret = secret_bearer.rpartition(".")[2]
        assert secret not in log and all(secret not in s for _, _, s in door.audit())


def test_a_refusal_naming_no_known_tenant_is_in_the_security_log(door: Door) -> None:
    """No credential, for a tenant that does not exist: the server's security log has it,
    with the address, the method and the tenant it named; so has a made-up token of a real
    tenant, kept out of that tenant's trail; the verification workers write theirs there too."""
    trail = len(door.audit())
    outcome = invoke(door.issue, LIST_PRODUCTS, apb.ListProductsRequest(tenant=GHOST))
    assert outcome.code is UNAUTHENTICATED
    outcome = invoke(door.issue, LIST_PRODUCTS, apb.ListProductsRequest(tenant=door.tenant),
                     metadata=bearer("pt1.r1.0123456789ab." + FAKE_SECRET))
    assert outcome.code is UNAUTHENTICATED
    assert len(door.audit()) == trail
    outcome = invoke(door.verify, VERIFY, vpb.VerifyRequest(tenant=door.tenant, code="x"),
                     metadata=bearer("pt1.r1.0123456789ab." + FAKE_SECRET))
    assert outcome.code is UNAUTHENTICATED
    lines = security_log.read(door.data)
    ghost = [e for e in lines if e["tenant"] == GHOST]
    assert ghost[-1] | {"at_ms": 0} == {
        "at_ms": 0, "reason": "no_credential", "method": "/pharmatrace.v1.Admin/ListProducts",
        "address": "ipv4:127.0.0.1", "tenant": GHOST, "tenant_known": False, "credential": "",
        "role": ""}
    worker = [e for e in lines if e["method"].endswith("/Verify")]
    assert worker[-1]["credential"] == "token 0123456789ab"
    assert worker[-1]["reason"] == "unknown_token" and worker[-1]["tenant_known"] is True
    assert FAKE_SECRET not in (door.data / security_log.FILE).read_text(encoding="utf-8")


def test_a_burst_of_refusals_is_an_alert_the_admin_lists_and_watches_and_slows_the_address(
        door: Door, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Five wrong secrets for one token within a minute: one ACCESS_REFUSED alert naming the
    credential and the address (the sixth adds none), shown by `alerts list --kind access`
    and by WatchAlerts; later calls from the address are held back but still answered."""
    token, token_id = _token(door)
    wrong = _wrong(token)
    request = apb.ListProductsRequest(tenant=door.tenant)
    for _ in range(BURST + 1):
        assert invoke(door.issue, LIST_PRODUCTS, request,
                      metadata=bearer(wrong)).code is UNAUTHENTICATED
    mine = [a for a in door.alerts() if a.credential == f"token {token_id}"]
    assert len(mine) == 1
    alert = mine[0]
    assert (alert.source, alert.address, alert.refusals) == (
        tpb.ALERT_SOURCE_ACCESS, "ipv4:127.0.0.1", BURST)
    assert alert.detail.startswith(f"{BURST} refused calls within 60 s from credential token "
                                   f"{token_id}, the last unknown_token on ListProducts")

    token_file = tmp_path / "admin.token"
    token_file.write_text(door.admin)
    parser = argparse.ArgumentParser(prog="pharmatrace")
    register(parser.add_subparsers())
    args = parser.parse_args(["alerts", "list", "--kind", "access", "--tenant", door.tenant,
                              "--token-file", str(token_file), "--issue-addr",
                              door.issue_address, "--verify-addr", door.verify_address])
    assert args.run(args) == 0
    listed = capsys.readouterr().out
    assert f"access_refused   {alert.detail}" in listed

    stub = trace_pb2_grpc.TraceStub(door.verify)
    watch = stub.WatchAlerts(tpb.WatchAlertsRequest(
        tenant=door.tenant, kind=vpb.ALERT_KIND_ACCESS_REFUSED, after_id=alert.alert_id - 1),
        metadata=bearer(door.admin), timeout=RPC_TIMEOUT_S)
    first = next(iter(watch))
    watch.cancel()
    assert first.alerts[0].alert_id == alert.alert_id

    slowed = door.registry.get_sample_value("pharmatrace_slowed_calls_total") or 0.0
    answer = invoke(door.issue, LIST_PRODUCTS, request, metadata=bearer(door.admin))
    assert answer.code is OK
    assert (door.registry.get_sample_value("pharmatrace_slowed_calls_total") or 0.0) > slowed
