"""Generated requests against a real `pharmatrace serve` with authentication on: at least 10,000
per service, with field values built from the message descriptors (wrong, huge and empty
strings, random unicode, malformed codes, extreme numbers, unknown enum values, nested
messages, repeated fields of any length), plus raw bytes that are no message at all.

Every answer must be a proper status (never UNKNOWN or INTERNAL, never a hang), carry no stack
trace, path, key or token, the server must keep serving, and the ledger must stay exactly as it
was across every run of requests in which none was applied. The generator is seeded, so a
failure repeats; the failing request's method and a summary are in the assertion.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb

import tracerpc
from tests.e2e.conftest import START_TIMEOUT_S, pharmatrace_command
from tests.integration.authz.rig import (
    RPCS,
    Outcome,
    Rpc,
    bearer,
    invoke,
    ledger_fingerprint,
)
from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.fuzz_requests import (
    GTIN,
    LOT,
    NMPA_ID,
    PARTIES,
    SUPPLIER,
    SUPPLIER_LOT,
    TENANT,
    Fuzzer,
    Known,
)
from tests.ledgers import dev_codes
from tests.processes import stop
from tracecore.clock import now_ms
from tracecore.credentials import Role
from tracecore.keys import KEY_FILE_ENV, KeyRing, KeySource, write_key_file
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import DataDir
from tracerpc.authz import WRITES
from tracerpc.interceptor import MAX_MESSAGE_CHARS

SEED = 6_2026
#: Generated requests per service (garbage bytes and the credential-less pass come on top).
PER_SERVICE = 10_000
#: Requests run together; the ledger is compared between windows. Short windows where requests
#: may be applied (so that many windows have none), long ones where nothing writes the ledger.
WRITING_WINDOW = 40
READING_WINDOW = 500
THREADS = 12
GARBAGE_PER_METHOD = 40
UNAUTHENTICATED_PER_SERVICE = 300
#: A watch that passed validation streams until cancelled; it is given this long.
WATCH_TIMEOUT_S = 0.5
SERVICES = {"issue": ("pharmatrace.v1.Admin", "pharmatrace.v1.CodeIssuance",
                      "pharmatrace.v1.Lifecycle", "pharmatrace.v1.LogisticUnits"),
            "verify": ("pharmatrace.v1.Verification", "pharmatrace.v1.Trace")}
#: Statuses that would mean a crash, a hang or an unmapped error rather than an answer.
IMPROPER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS,
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED}
_TRACE = re.compile(r"Traceback|File \"|line \d+, in |/[\w./-]+\.py\b|site-packages")
#: A field ("batch.materials[2].supplier: ...") or a JSON path in a document ("$.type: ...").
_NAMES_A_FIELD = re.compile(r"([a-z_][a-z0-9_]*(\[\d+\])?)(\.[a-z_][a-z0-9_]*(\[\d+\])?)*: |\$")
#: Messages may quote the request, but only so much of it.
MAX_DETAILS = MAX_MESSAGE_CHARS + len("…")


# -- the server --------------------------------------------------------------------------------


@dataclass
class Target:
    """One `pharmatrace serve` (auth on, key file from the environment) and tenant ``fuzz``."""

    process: subprocess.Popen[bytes]
    data: Path
    log: Path
    issue: grpc.Channel
    verify: grpc.Channel
    admin: str
    key_file: Path
    secrets: list[str]
    known: Known = field(init=False)

    def channel(self, rpc: Rpc) -> grpc.Channel:
        return self.issue if rpc.service in SERVICES["issue"] else self.verify

    def serving(self) -> bool:
        for channel in (self.issue, self.verify):
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT_S)
            if response.status != health_pb2.HealthCheckResponse.SERVING:
                return False
        return self.process.poll() is None


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log: Path) -> dict[str, int]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    ports: dict[str, int] = json.loads(ready.read_text())
    return ports


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("fuzz")
    data, key_file, log, ready = root / "data", root / "kek", root / "serve.log", root / "ready"
    write_key_file(key_file)
    operator_data = DataDir(data, KeySource.dev())
    try:
        _, operator = operator_data.operator().create_token(Role.OPERATOR, "", "", 0, now_ms())
    finally:
        operator_data.close()
    env = {**os.environ, KEY_FILE_ENV: str(key_file), "PYTHONUNBUFFERED": "1"}
    env.pop("PHARMATRACE_KEY_PASSPHRASE", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*pharmatrace_command(), "serve", "--insecure", "--data", str(data),
             "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0", "--http-port", "0",
             "--workers", "1",
             "--grace", "1", "--ready-file", str(ready)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    channels: list[grpc.Channel] = []
    try:
        ports = _wait_ready(process, ready, log)
        options = [("grpc.max_send_message_length", 64 << 20),
                   ("grpc.max_receive_message_length", 64 << 20)]
        channels = [grpc.insecure_channel(f"127.0.0.1:{ports[name]}", options=options)
                    for name in ("issue", "verify")]
        admin = _call(channels[0], "/pharmatrace.v1.Admin/CreateTenant",
                      apb.CreateTenantRequest(tenant=TENANT, name="Fuzz Pharma"),
                      operator).admin_token
        target = Target(process, data, log, *channels, admin, key_file, [operator, admin])
        target.known = _populate(target)
        yield target
    finally:
        for channel in channels:
            channel.close()
        stop(process, "pharmatrace serve")


def _call(channel: grpc.Channel, path: str, request: Message, token: str) -> Any:
    outcome = invoke(channel, RPCS[path], request, metadata=bearer(token))
    assert outcome.code is grpc.StatusCode.OK, (path, outcome)
    return outcome.responses[0] if len(outcome.responses) == 1 else outcome.responses


def _populate(target: Target) -> Known:
    """Products (GS1 and NMPA), a batch with a raw-material lot, three parties, tokens, and codes
    in every state a line would leave them: issued, commissioned, shipped."""
    issue, admin = target.issue, target.admin

    def ok(path: str, request: Message) -> Any:
        return _call(issue, path, request, admin)

    ok("/pharmatrace.v1.Admin/RegisterProduct", apb.RegisterProductRequest(
        tenant=TENANT, product=cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg")))
    ok("/pharmatrace.v1.Admin/RegisterProduct", apb.RegisterProductRequest(
        tenant=TENANT, product=cpb.Product(nmpa_id=NMPA_ID, name="阿莫西林胶囊")))
    ok("/pharmatrace.v1.Admin/AddBatch", apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
        product=GTIN, lot=LOT, expires_on="2031-06-30", authorised_regions=["44"],
        materials=[cpb.MaterialLot(material="api", supplier=SUPPLIER,
                                   supplier_lot=SUPPLIER_LOT)])))
    kinds = (cpb.PARTY_KIND_PLANT, cpb.PARTY_KIND_DISTRIBUTOR, cpb.PARTY_KIND_PHARMACY)
    for party, kind in zip(PARTIES, kinds, strict=True):
        ok("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(tenant=TENANT, party=cpb.Party(
            party_id=party, name=party, kind=kind, region="440305")))
    credential_ids = []
    for role in (Role.LINE, Role.PHARMACY):
        response = ok("/pharmatrace.v1.Admin/CreateToken", apb.CreateTokenRequest(
            tenant=TENANT, role=int(role)))  # type: ignore[arg-type]
        credential_ids.append(response.credential.credential_id)
        target.secrets.append(response.token)
    codes: list[str] = []
    request_ids = ["fuzz-units", "fuzz-nmpa", "fuzz-cases"]
    for request_id, product, level in ((request_ids[0], GTIN, cpb.PACKAGING_LEVEL_UNIT),
                                       (request_ids[1], NMPA_ID, cpb.PACKAGING_LEVEL_UNIT),
                                       (request_ids[2], GTIN, cpb.PACKAGING_LEVEL_CASE)):
        chunks = ok("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
            tenant=TENANT, product=product, lot=LOT if product == GTIN else "", count=12,
            level=level, request_id=request_id))
        for chunk in chunks if isinstance(chunks, list) else [chunks]:
            codes += [f"(01){chunk.product}(21){s}" if chunk.scheme == cpb.SCHEME_GS1
                      else chunk.product + s for s in chunk.serials]
    plant = lpb.EventContext(party_id="PLANT")
    ok("/pharmatrace.v1.Lifecycle/Commission", lpb.CommissionRequest(
        tenant=TENANT, codes=codes[:8] + codes[12:20] + codes[24:28], context=plant))
    ok("/pharmatrace.v1.Lifecycle/Ship", lpb.ShipRequest(
        tenant=TENANT, codes=codes[:4], destination="DIST-1", context=plant))
    return Known(codes, credential_ids, request_ids)


# -- running requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    path: str
    code: grpc.StatusCode
    details: str
    applied: bool
    request: Message | bytes

    @property
    def summary(self) -> str:
        """The start of the request, for a failure message (formatting every one costs)."""
        if isinstance(self.request, bytes):
            return repr(self.request[:64])
        return str(self.request)[:300]


#: Writes that change the tenant's key ring file, never its ledger.
_KEY_RING_ONLY = frozenset(f"/pharmatrace.v1.Admin/{m}" for m in ("RotateKey", "RetireKey",
                                                                    "RevokeKey"))


def _applied(path: str, outcome: Outcome) -> bool:
    """Whether a call may have changed the ledger: an OK write, unless its answer says that
    nothing was applied."""
    if outcome.code is not grpc.StatusCode.OK or path not in WRITES or path in _KEY_RING_ONLY:
        return False
    response = outcome.responses[0] if outcome.responses else None
    if isinstance(response, lpb.LifecycleResponse):
        return bool(response.event_seqs or response.changed)
    if isinstance(response, (lpb.CaptureEventsResponse, lpb.ImportEpcisResponse)):
        return bool(response.recorded or response.changed)
    if isinstance(response, ipb.ReturnCodesResponse):
        return bool(response.voided)
    if isinstance(response, lpb.RecallResponse):
        return bool(response.event_seqs)
    return True


def _run(target: Target, rpc: Rpc, request: Message | bytes,
         metadata: tuple[tuple[str, str], ...]) -> Result:
    timeout = WATCH_TIMEOUT_S if rpc.path.endswith("/WatchAlerts") else RPC_TIMEOUT_S
    channel = target.channel(rpc)
    if isinstance(request, bytes):
        outcome = _raw(channel, rpc, request, metadata, timeout)
    else:
        outcome = invoke(channel, rpc, request, metadata=metadata, timeout=timeout)
    if outcome.code is grpc.StatusCode.DEADLINE_EXCEEDED and timeout == WATCH_TIMEOUT_S:
        outcome = Outcome(grpc.StatusCode.OK, "")  # a valid watch streams until cancelled
    return Result(rpc.path, outcome.code, outcome.details, _applied(rpc.path, outcome), request)


def _raw(channel: grpc.Channel, rpc: Rpc, payload: bytes,
         metadata: tuple[tuple[str, str], ...], timeout: float) -> Outcome:
    """Sends ``payload`` as the request message, unserialised, through a generic call."""
    method = rpc.method
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(rpc.path)(iter([payload]), metadata=metadata,
                                                 timeout=timeout))
        elif method.client_streaming:
            channel.stream_unary(rpc.path)(iter([payload]), metadata=metadata, timeout=timeout)
        elif method.server_streaming:
            list(channel.unary_stream(rpc.path)(payload, metadata=metadata, timeout=timeout))
        else:
            channel.unary_unary(rpc.path)(payload, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        return Outcome(error.code(), error.details() or "")  # type: ignore[attr-defined]
    return Outcome(grpc.StatusCode.OK, "")


@dataclass
class Tally:
    """What a fuzz run saw: statuses by method, windows compared, requests applied."""

    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    compared: int = 0
    windows: int = 0
    applied: int = 0
    #: The first message seen for each method and status.
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    #: The first example of each kind of improper answer, by method and kind.
    problems: dict[tuple[str, str], str] = field(default_factory=dict)

    def codes(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (_, code), n in self.statuses.items():
            out[code] += n
        return out


def _secrets_in(target: Target) -> list[str]:
    """Every secret an error message must not show: tokens, their secret parts, the key-
    encryption key and every signing key (hex and base64), the data directory."""
    kek = target.key_file
    code = Path(tracerpc.__file__).parent.parent
    found = [target.data.as_posix(), code.as_posix(), kek.read_text().strip()]
    for token in target.secrets:
        found += [token, token.rsplit(".", 1)[1]]
    ring = KeyRing.load(target.data / "tenants" / TENANT / "keyring.bin",
                        KeySource.key_file(kek))
    for key in ring:
        found += [key.secret.hex(), key.secret.hex().upper(), base64.b64encode(key.secret).decode(),
                  base64.urlsafe_b64encode(key.secret).decode().rstrip("=")]
    return found


def _problem(result: Result, secrets: Sequence[str]) -> str | None:
    """What is wrong with an answer, or None."""
    if result.code in IMPROPER:
        return f"{result.code.name} is not a proper answer"
    if len(result.details) > MAX_DETAILS or "Stream removed" in result.details:
        return "the message is too long to arrive whole"
    if result.code is grpc.StatusCode.INVALID_ARGUMENT and not _NAMES_A_FIELD.match(
            result.details):
        return "INVALID_ARGUMENT names no field"
    if _TRACE.search(result.details):
        return "the message shows code locations"
    if any(secret in result.details for secret in secrets):
        return "the message shows a secret or the data directory"
    return None


def _fuzz(target: Target, ledger: Ledger, calls: Sequence[tuple[Rpc, Message | bytes]],
          metadata: Callable[[int], tuple[tuple[str, str], ...]], *, audit: bool = False
          ) -> Tally:
    """Runs ``calls`` a window at a time on ``THREADS`` threads; after each window in which
    no call was applied, the ledger (audit trail aside unless ``audit``) must be as before."""
    tally = Tally()
    secrets = _secrets_in(target)
    writing = any(rpc.path in WRITES for rpc, _ in calls)
    size = WRITING_WINDOW if writing else READING_WINDOW
    with ThreadPoolExecutor(THREADS) as pool:
        before = ledger_fingerprint(ledger, audit=audit)
        for start in range(0, len(calls), size):
            window = calls[start:start + size]
            results = list(pool.map(lambda item: _run(target, item[1][0], item[1][1],
                                                      metadata(item[0])),
                                    enumerate(window, start)))
            applied = [r for r in results if r.applied]
            for result in results:
                tally.statuses[(result.path, result.code.name)] += 1
                tally.examples.setdefault((result.path, result.code.name), result.details[:150])
                problem = _problem(result, secrets)
                if problem is not None:
                    tally.problems.setdefault((result.path, problem), (
                        f"{result.path}: {problem}: {result.code.name} "
                        f"{result.details[:200]!r} for {result.summary!r}"))
            after = ledger_fingerprint(ledger, audit=audit)
            tally.windows += 1
            tally.applied += len(applied)
            if not applied:
                tally.compared += 1
                assert after == before, (
                    "the ledger changed in a window where no request was applied: "
                    + "; ".join(f"{r.path} {r.code.name}" for r in results
                                if r.code is grpc.StatusCode.OK)[:2000])
            before = after
    assert target.serving(), "the server stopped serving"
    assert not tally.problems, "\n".join(tally.problems.values())
    return tally


@pytest.fixture(scope="module")
def ledger(target: Target) -> Iterator[Ledger]:
    opened = Ledger(target.data / "tenants" / TENANT / "ledger", tenant=TENANT,
                    codes=dev_codes(TENANT), readonly=True)
    yield opened
    opened.close()


def _rpcs_of(service: str) -> list[Rpc]:
    return [rpc for rpc in RPCS.values() if rpc.service == service]


def _generated(target: Target, service: str, seed: int, n: int) -> list[tuple[Rpc, Message]]:
    rng = random.Random(seed)
    fuzzer = Fuzzer(rng, target.known)
    rpcs = _rpcs_of(service)
    # A watch that passes validation holds a thread until its deadline: fewer of them.
    weights = [0.1 if rpc.path.endswith("/WatchAlerts") else 1.0 for rpc in rpcs]
    chosen = rng.choices(rpcs, weights, k=n)
    return [(rpc, fuzzer.request(rpc)) for rpc in chosen]


ALL_SERVICES = [*SERVICES["issue"], *SERVICES["verify"]]


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_generated_requests_get_proper_answers_and_rejected_ones_change_nothing(
        target: Target, ledger: Ledger, service: str) -> None:
    """10,000 admin requests: proper, clean answers, still serving, no change from rejected ones."""
    calls = _generated(target, service, SEED + ALL_SERVICES.index(service), PER_SERVICE)
    token = bearer(target.admin)
    tally = _fuzz(target, ledger, calls, lambda _: token)
    codes = tally.codes()
    assert sum(codes.values()) == PER_SERVICE
    past_auth = PER_SERVICE - codes["UNAUTHENTICATED"] - codes["PERMISSION_DENIED"]
    assert past_auth > PER_SERVICE // 2, codes
    assert codes["INVALID_ARGUMENT"] > 0 and codes["OK"] > 0, codes
    assert tally.compared > 0, tally


def test_raw_bytes_that_are_no_message_get_proper_answers(target: Target,
                                                          ledger: Ledger) -> None:
    """Random bytes as a request get a proper status (INVALID_ARGUMENT if undecodable)."""
    rng = random.Random(SEED - 1)
    calls: list[tuple[Rpc, Message | bytes]] = []
    for rpc in RPCS.values():
        for _ in range(GARBAGE_PER_METHOD):
            size = rng.choice([1, 2, 3, 7, 50, 300, 5000])
            calls.append((rpc, rng.choice([b"\xff" * size, rng.randbytes(size),
                                           b"\x0a\xff\xff\xff\xff\x0f" + rng.randbytes(size)])))
    rng.shuffle(calls)
    token = bearer(target.admin)
    tally = _fuzz(target, ledger, calls, lambda _: token)
    assert tally.applied == 0
    assert tally.codes()["INVALID_ARGUMENT"] > len(calls) // 2, tally.codes()


def test_generated_requests_without_a_valid_credential_are_all_unauthenticated(
        target: Target, ledger: Ledger) -> None:
    """Without a valid credential all is UNAUTHENTICATED; the ledger, audit included, is kept."""
    forged = f"pt1.{TENANT}.{'0' * 12}.{'A' * 43}"
    headers = [(), bearer(forged), (("authorization", "Basic x"),), bearer("garbage")]
    calls: list[tuple[Rpc, Message | bytes]] = []
    for index, service in enumerate(ALL_SERVICES):
        calls += _generated(target, service, SEED + 100 + index, UNAUTHENTICATED_PER_SERVICE)
    tally = _fuzz(target, ledger, calls, lambda i: headers[i % len(headers)], audit=True)
    assert tally.codes() == Counter({"UNAUTHENTICATED": len(calls)}), tally.codes()
    assert tally.compared == tally.windows


def test_the_server_logged_no_unexpected_error(target: Target, ledger: Ledger) -> None:
    """After all the fuzzing the server's log holds no traceback: no answer came from a crash."""
    text = target.log.read_text(errors="replace")
    assert "Traceback" not in text and "unexpected error" not in text, text[-5000:]
