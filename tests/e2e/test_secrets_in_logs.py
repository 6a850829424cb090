"""No secret leaves the server: a full scenario against `pharmatrace serve` (authentication and
TLS on, the key passphrase from the environment, DEBUG logging) and a search of everything it
wrote and answered for tokens, the passphrase, signing keys and the data directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.e2e.conftest import CLI_TIMEOUT_S, START_TIMEOUT_S, pharmatrace_command
from tests.processes import stop
from tracecore.keys import KEY_FILE_ENV, PASSPHRASE_ENV, KeyRing, KeySource
from tracerpc.certs import DevPki, client_credentials, init_dev_pki

TIMEOUT_S = 30.0
TENANT = "acme"
GTIN, LOT = "09501101530003", "LOT-S1"


@dataclass
class Scenario:
    """What a run of `pharmatrace serve` produced: its log, the answers clients saw, the metrics
    page, and the secrets and paths none of them may contain."""

    data: Path
    passphrase: str
    log: str = ""
    answers: list[str] = field(default_factory=list)
    metrics: str = ""
    tokens: list[str] = field(default_factory=list)


class _Client:
    """Calls over TLS with a token, keeping the text of every answer and error."""

    def __init__(self, pki: DevPki, ports: dict[str, int], scenario: Scenario) -> None:
        credentials = client_credentials(pki.ca, None, None)
        self.issue = grpc.secure_channel(f"localhost:{ports['issue']}", credentials)
        self.verify = grpc.secure_channel(f"localhost:{ports['verify']}", credentials)
        self.scenario = scenario

    def close(self) -> None:
        self.issue.close()
        self.verify.close()

    def call(self, path: str, request: Message, token: str | None, *,
             keep: bool = True) -> Any:
        """The answer (every message of a stream, as a list), or the RpcError; its text is kept
        for the search unless ``keep`` is off (answers whose purpose is to show a new token)."""
        service, method_name = path.strip("/").split("/")
        channel = self.verify if service.endswith(("Verification", "Trace")) else self.issue
        descriptor = _SERVICES[service].methods_by_name[method_name]
        parse = GetMessageClass(descriptor.output_type).FromString
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        try:
            if descriptor.server_streaming:
                answer: Any = list(channel.unary_stream(path, _serialize, parse)(
                    request, metadata=metadata, timeout=TIMEOUT_S))
            else:
                answer = channel.unary_unary(path, _serialize, parse)(
                    request, metadata=metadata, timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            assert isinstance(error, grpc.Call)
            self.scenario.answers.append(
                f"{error.code()} {error.details()} {error.trailing_metadata()}")
            return error
        if keep:
            self.scenario.answers.append(str(answer))
        return answer


_SERVICES = {service.full_name: service for module in (apb, ipb, lpb, tpb, vpb)
             for service in module.DESCRIPTOR.services_by_name.values()}


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*pharmatrace_command(), *args], env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)


@contextlib.contextmanager
def _serving(data: Path, pki: DevPki, passphrase: str, log: Path
             ) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int]]]:
    ready = log.with_suffix(".ready")
    env = {**os.environ, PASSPHRASE_ENV: passphrase, "PHARMATRACE_LOG_LEVEL": "DEBUG",
           "PYTHONUNBUFFERED": "1"}
    env.pop(KEY_FILE_ENV, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*pharmatrace_command(), "serve", "--data", str(data), "--tls-cert", str(pki.server),
             "--tls-key", str(pki.server_key), "--issue-port", "0", "--verify-port", "0",
             "--metrics-port", "0", "--http-port", "0", "--workers", "1", "--grace", "1",
             "--public-verify",
             "--public-rate", "0.05", "--ready-file", str(ready)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield process, json.loads(ready.read_text())
    finally:
        stop(process, "pharmatrace serve")


def _run_scenario(client: _Client, scenario: Scenario, operator: str) -> None:
    """Tenant, tokens, master data, a pool, a pack's life, verification, tracing, key rotation,
    a failed login and a rate-limited public call."""
    call, tokens = client.call, scenario.tokens
    admin = call("/pharmatrace.v1.Admin/CreateTenant", apb.CreateTenantRequest(
        tenant=TENANT, name="Acme Pharma"), operator, keep=False).admin_token
    tokens.append(admin)
    call("/pharmatrace.v1.Admin/RegisterProduct", apb.RegisterProductRequest(
        tenant=TENANT, product=cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg")), admin)
    call("/pharmatrace.v1.Admin/AddBatch", apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
        product=GTIN, lot=LOT, expires_on="2031-06-30")), admin)
    for party, kind in (("PLANT", cpb.PARTY_KIND_PLANT), ("DIST-1", cpb.PARTY_KIND_DISTRIBUTOR),
                        ("PHARM-1", cpb.PARTY_KIND_PHARMACY)):
        call("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(tenant=TENANT, party=cpb.Party(
            party_id=party, name=party, kind=kind, region="440305")), admin)
    made = {}
    for role, party in ((apb.ROLE_LINE, "PLANT"), (apb.ROLE_DISTRIBUTOR, "DIST-1"),
                        (apb.ROLE_PHARMACY, "PHARM-1"), (apb.ROLE_REGULATOR, "")):
        response = call("/pharmatrace.v1.Admin/CreateToken", apb.CreateTokenRequest(
            tenant=TENANT, role=role, party_id=party, label=f"{party or 'qa'} token"), admin,
            keep=False)
        made[role] = response.token
        tokens.append(response.token)
    line, dist, pharmacy = made[apb.ROLE_LINE], made[apb.ROLE_DISTRIBUTOR], made[apb.ROLE_PHARMACY]
    call("/pharmatrace.v1.Admin/ListTokens", apb.ListTokensRequest(tenant=TENANT), admin)

    chunks = call("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
        tenant=TENANT, product=GTIN, lot=LOT, count=6, request_id="pool-1"), line)
    codes = [f"(01){c.product}(21){s}" for c in chunks for s in c.serials]
    call("/pharmatrace.v1.CodeIssuance/GetPool", ipb.GetPoolRequest(
        tenant=TENANT, request_id="pool-1"), line)
    call("/pharmatrace.v1.CodeIssuance/ReturnCodes", ipb.ReturnCodesRequest(
        tenant=TENANT, codes=codes[5:], reason=ipb.RETURN_REASON_SCRAPPED), line)
    call("/pharmatrace.v1.Lifecycle/Commission", lpb.CommissionRequest(
        tenant=TENANT, codes=codes[:5]), line)
    call("/pharmatrace.v1.Lifecycle/Ship", lpb.ShipRequest(
        tenant=TENANT, codes=codes[:3], destination="DIST-1",
        context=lpb.EventContext(party_id="PLANT")), admin)
    call("/pharmatrace.v1.Lifecycle/Receive", lpb.ReceiveRequest(tenant=TENANT, codes=codes[:3]),
         dist)
    call("/pharmatrace.v1.Lifecycle/Ship", lpb.ShipRequest(
        tenant=TENANT, codes=codes[:1], destination="PHARM-1"), dist)
    call("/pharmatrace.v1.Lifecycle/Receive", lpb.ReceiveRequest(tenant=TENANT, codes=codes[:1]),
         pharmacy)
    call("/pharmatrace.v1.Verification/Verify", vpb.VerifyRequest(tenant=TENANT, code=codes[0]),
         pharmacy)
    dispensed = call("/pharmatrace.v1.Lifecycle/Decommission", lpb.DecommissionRequest(
        tenant=TENANT, codes=codes[:1], target=cpb.CODE_STATUS_DISPENSED), pharmacy)
    undone = call("/pharmatrace.v1.Lifecycle/Undo", lpb.UndoRequest(
        tenant=TENANT, codes=codes[:1]), pharmacy)
    assert dispensed.applied and undone.applied, (dispensed, undone)
    call("/pharmatrace.v1.Verification/VerifyBatch", vpb.VerifyBatchRequest(
        tenant=TENANT, codes=codes), dist)
    call("/pharmatrace.v1.Trace/TraceCode", tpb.TraceCodeRequest(tenant=TENANT, code=codes[0]),
         admin)
    call("/pharmatrace.v1.Trace/ListEvents", tpb.ListEventsRequest(tenant=TENANT), admin)

    call("/pharmatrace.v1.Admin/RotateKey", apb.RotateKeyRequest(tenant=TENANT), admin)
    call("/pharmatrace.v1.Admin/RotateKey", apb.RotateKeyRequest(tenant=TENANT), admin)
    call("/pharmatrace.v1.Admin/RevokeKey", apb.KeyRequest(tenant=TENANT, key_id=2), admin)
    call("/pharmatrace.v1.Admin/ListKeys", apb.ListKeysRequest(tenant=TENANT), admin)
    after_rotation = call("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
        tenant=TENANT, product=GTIN, lot=LOT, count=2, request_id="pool-2"), line)
    assert not isinstance(after_rotation, grpc.RpcError), after_rotation

    credential = line.split(".")[2]
    wrong = f"pt1.{TENANT}.{credential}.{secrets.token_urlsafe(32)}"
    tokens.append(wrong)
    refused = [call("/pharmatrace.v1.Admin/ListProducts", apb.ListProductsRequest(tenant=TENANT),
                    bad) for bad in (wrong, "pt1.acme.not-a-token", line + "x")]
    call("/pharmatrace.v1.Admin/RevokeToken", apb.RevokeTokenRequest(
        tenant=TENANT, credential_id=credential), admin)
    refused.append(call("/pharmatrace.v1.Lifecycle/Commission", lpb.CommissionRequest(
        tenant=TENANT, codes=codes[5:]), line))
    assert all(r.code() is grpc.StatusCode.UNAUTHENTICATED for r in refused), refused

    public = [call("/pharmatrace.v1.Verification/Verify", vpb.VerifyRequest(
        tenant=TENANT, code=codes[1]), None) for _ in range(2)]
    assert public[-1].code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[union-attr]


def _forms(secret: bytes) -> list[str]:
    """The ways a key could be written out: hex either case, base64 either alphabet."""
    return [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("=")]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("secrets")
    data, log = root / "data", root / "serve.log"
    pki = init_dev_pki(root / "pki")
    found = Scenario(data, passphrase=f"pp-{secrets.token_urlsafe(18)}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    operator = _cli("operator", "token", "--data", str(data), env=env)
    assert operator.returncode == 0, operator.stderr
    operator_token = operator.stdout.strip()
    found.tokens.append(operator_token)
    found.answers.append(operator.stderr)
    with _serving(data, pki, found.passphrase, log) as (_, ports):
        client = _Client(pki, ports, found)
        try:
            _run_scenario(client, found, operator_token)
        finally:
            client.close()
        admin_file = root / "admin.token"
        admin_file.write_text(found.tokens[1])
        cli_env = {**env, "PHARMATRACE_ISSUE_ADDR": f"localhost:{ports['issue']}",
                   "PHARMATRACE_VERIFY_ADDR": f"localhost:{ports['verify']}"}
        for args in (("token", "list"), ("keys", "list"), ("keys", "rotate")):
            result = _cli(*args, "--tenant", TENANT, "--ca", str(pki.ca), "--token-file",
                          str(admin_file), env=cli_env)
            assert result.returncode == 0, result.stderr
            found.answers += [result.stdout, result.stderr]
        # The tenant's chains are encrypted under a key derived from the passphrase.
        audit = _cli("audit", "verify", "--data", str(data),
                     env={**env, PASSPHRASE_ENV: found.passphrase})
        assert audit.returncode == 0, audit.stdout + audit.stderr
        found.answers += [audit.stdout, audit.stderr]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics",
                                    timeout=TIMEOUT_S) as page:
            found.metrics = page.read().decode()
    found.log = log.read_text(errors="replace")
    return found


def _secrets(scenario: Scenario) -> dict[str, str]:
    """Every secret by a name that says what it is (never the secret itself)."""
    named: dict[str, str] = {"the key passphrase": scenario.passphrase,
                             "the data directory": scenario.data.as_posix()}
    for n, token in enumerate(scenario.tokens):
        named[f"token {n}"] = token
        named[f"the secret of token {n}"] = token.rsplit(".", 1)[1]
    for ring_file in sorted(scenario.data.glob("tenants/*/keyring.bin")):
        ring = KeyRing.load(ring_file, KeySource.passphrase(scenario.passphrase))
        for key in ring:
            for form in _forms(key.secret):
                named[f"signing key {key.key_id} of {ring_file.parent.name}"] = form
    return named


def _leaks(text: str, scenario: Scenario) -> list[str]:
    return [name for name, secret in _secrets(scenario).items() if secret in text]


def test_the_scenario_ran_with_keys_rotated_and_calls_refused(scenario: Scenario) -> None:
    """The run logged at DEBUG, made four keys, refused a login and rate-limited a counted call."""
    assert " DEBUG " in scenario.log
    names = [name for name in _secrets(scenario) if name.startswith("signing key")]
    assert {name.split()[2] for name in names} == {"1", "2", "3", "4"}
    assert any("UNAUTHENTICATED" in answer for answer in scenario.answers)
    assert any("RESOURCE_EXHAUSTED" in answer for answer in scenario.answers)
    rate_limited = [line for line in scenario.metrics.splitlines()
                    if line.startswith("pharmatrace_rate_limited_total ")]
    assert rate_limited and float(rate_limited[0].split()[1]) >= 1


def test_the_server_log_holds_no_secret(scenario: Scenario) -> None:
    """The DEBUG log names no token, token secret, passphrase, signing key or data directory."""
    assert _leaks(scenario.log, scenario) == []


def test_no_answer_holds_a_secret(scenario: Scenario) -> None:
    """No answer, error or command output (bar a new token's) holds a secret or the data path."""
    leaks = {name for answer in scenario.answers for name in _leaks(answer, scenario)}
    assert leaks == set()


def test_the_metrics_hold_no_secret(scenario: Scenario) -> None:
    """The metrics page names no token, passphrase, key or path (in a label or anywhere)."""
    assert _leaks(scenario.metrics, scenario) == []
