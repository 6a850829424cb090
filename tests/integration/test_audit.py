"""The audit trail over real gRPC: every write (admin, issuance, lifecycle, tokens, keys, the
platform's) leaves one record of who, what, when, where from and how it ended, refused writes
included; and `Access.verify_audit` and `pharmatrace audit verify` find a record changed,
removed, inserted or reordered when the LMDB file is edited behind the server's back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import lmdb
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb
from prometheus_client import CollectorRegistry

from codegen_svc import app as codegen_app
from tests.e2e.conftest import CLI_TIMEOUT_S, pharmatrace_command
from tests.integration.authz.rig import (
    RPCS,
    TENANT_ROLES,
    Secured,
    World,
    create_tenant,
    create_token,
    ledger_fingerprint,
    make_world,
    request_for,
)
from tests.integration.conftest import RPC_TIMEOUT_S, _LoopThread
from tests.ledgers import dev_codes
from tracecore import issuance
from tracecore.clock import now_ms
from tracecore.credentials import OPERATOR, Role
from tracecore.keys import KEY_FILE_ENV, PASSPHRASE_ENV, KeySource
from tracecore.ledger import security_log
from tracecore.ledger.access import Access
from tracecore.ledger.records import seq_key
from tracecore.ledger.tenants import DataDir
from tracerpc.authz import TABLE, WRITES
from tracerpc.metrics import Metrics

ISSUANCE_SERVICES = ("pharmatrace.v1.Admin", "pharmatrace.v1.CodeIssuance",
                     "pharmatrace.v1.Lifecycle", "pharmatrace.v1.LogisticUnits")
PEER_PREFIX = "ipv4:127.0.0.1:"


@dataclass
class Audited:
    """The issuance server with authentication on, and its tenants ``audit-a`` and
    ``audit-b``."""

    secured: Secured
    world: World

    def trail(self, tenant: str) -> list[lpb.AuditRecord]:
        data = self.secured.codegen.data
        access = data.operator() if tenant == OPERATOR else data.get(tenant).access
        return access.audit_records()

    def lengths(self, *tenants: str) -> dict[str, int]:
        return {t: len(self.trail(t)) for t in tenants}


@pytest.fixture(scope="module")
def loop() -> Iterator[_LoopThread]:
    thread = _LoopThread()
    yield thread
    thread.close()


def _start(loop: _LoopThread, data: Path) -> tuple[codegen_app.Codegen, grpc.Channel]:
    codegen = loop.run(codegen_app.start(data, KeySource.dev(), "127.0.0.1:0",
                                         Metrics(CollectorRegistry()), tls=None,
                                         authenticate=True))
    channel = grpc.insecure_channel(f"127.0.0.1:{codegen.port}")
    grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    return codegen, channel


@pytest.fixture(scope="module")
def audited(loop: _LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    codegen, channel = _start(loop, tmp_path_factory.mktemp("audit-data"))
    try:
        secured = Secured.issuance(codegen, channel)
        yield Audited(secured, make_world(secured, "audit-a", "audit-b"))
    finally:
        channel.close()
        loop.run(codegen.stop(1.0))


def _caller(path: str) -> Role:
    """The role that makes a write in the walk: the admin where it may, else the operator,
    else the first tenant role the table allows."""
    allowed = TABLE[path].roles
    for role in (Role.ADMIN, Role.OPERATOR, *TENANT_ROLES):
        if role in allowed:
            return role
    raise AssertionError(f"nobody may call {path}")


@pytest.mark.parametrize("path", sorted(WRITES))
def test_every_write_leaves_one_record_of_who_what_when_and_result(audited: Audited,
                                                                   path: str) -> None:
    """Each write appends one record: credential, role, peer, method, summary, time and status."""
    world = audited.world
    role = _caller(path)
    request = request_for(path, world, harmless=True)
    tenant = getattr(request, "tenant", "")
    trails = [t for t in (tenant, OPERATOR if role is Role.OPERATOR else "") if t]
    existing = {OPERATOR, *audited.secured.codegen.data.names()}
    before = {t: len(audited.trail(t)) if t in existing else 0 for t in trails}
    started = now_ms()
    outcome = audited.secured.call(path, request, world.tokens[role])
    ended = now_ms()
    assert outcome.code not in (grpc.StatusCode.UNAUTHENTICATED,
                                grpc.StatusCode.PERMISSION_DENIED), outcome
    for trail in trails:
        added = audited.trail(trail)[before[trail]:]
        assert len(added) == 1, (trail, added)
        record = added[0]
        assert record.method == path
        assert (record.credential_id, record.role) == (world.credential_ids[role], int(role))
        assert record.peer.startswith(PEER_PREFIX)
        assert started <= record.at_ms <= ended
        assert record.status == outcome.code.name
        assert f"tenant={tenant}" in record.summary if tenant else True


_NAMED_BY_READS = ("/pharmatrace.v1.CodeIssuance/RequestCodes",
                   "/pharmatrace.v1.LogisticUnits/RegisterCompanyPrefix",
                   "/pharmatrace.v1.LogisticUnits/RequestSsccs")


def test_reads_leave_no_record_and_change_nothing(audited: Audited) -> None:
    """Issuance-server RPCs that are not writes leave the ledger, audit included, unchanged."""
    world = audited.world
    ledger = audited.secured.codegen.data.get(world.a).ledger
    reads = [p for p, rpc in RPCS.items() if rpc.service in ISSUANCE_SERVICES and p not in WRITES]
    assert reads
    # The pools the reads name, requested as the writes' test requests them (again, if it ran
    # before in this process: a pool's request id answers the same pool): this test may run
    # alone, or on another worker than the writes'.
    for path in _NAMED_BY_READS:
        outcome = audited.secured.call(path, request_for(path, world, harmless=True),
                                       world.tokens[_caller(path)])
        assert outcome.code in (grpc.StatusCode.OK, grpc.StatusCode.ALREADY_EXISTS), outcome
    for path in sorted(reads):
        before = ledger_fingerprint(ledger), len(audited.trail(OPERATOR))
        outcome = audited.secured.call(path, request_for(path, world, harmless=True),
                                       world.tokens[_caller(path)])
        assert outcome.code is grpc.StatusCode.OK, (path, outcome)
        assert (ledger_fingerprint(ledger), len(audited.trail(OPERATOR))) == before, path


def test_refused_writes_are_recorded_with_their_status_and_caller(audited: Audited) -> None:
    """Writes refused for a bad field or the caller's role are recorded with caller and status."""
    world = audited.world
    a = world.a
    start = len(audited.trail(a))
    bad = audited.secured.call("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(
        tenant=a, party=cpb.Party(party_id="no spaces allowed", name="x")), world.admin)
    assert bad.code is grpc.StatusCode.INVALID_ARGUMENT
    denied = audited.secured.call("/pharmatrace.v1.Admin/RegisterProduct",
                                  apb.RegisterProductRequest(tenant=a, product=cpb.Product(
                                      gtin="09501101530034", name="x")), world.tokens[Role.LINE])
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED
    assert [(r.method.rsplit("/", 1)[1], r.credential_id, r.role, r.status)
            for r in audited.trail(a)[start:]] == [
        ("AddParty", world.credential_ids[Role.ADMIN], Role.ADMIN, "INVALID_ARGUMENT"),
        ("RegisterProduct", world.credential_ids[Role.LINE], Role.LINE, "PERMISSION_DENIED"),
    ]


def test_a_write_naming_another_tenant_is_recorded_only_in_the_callers_trail(
        audited: Audited) -> None:
    """B's admin writing to tenant A is recorded, refused, in B's trail; A's trail stays as is."""
    world = audited.world
    before = audited.lengths(world.a, world.b)
    outcome = audited.secured.call("/pharmatrace.v1.Admin/RegisterProduct",
                                   apb.RegisterProductRequest(tenant=world.a, product=cpb.Product(
                                       gtin="09501101530034", name="x")), world.b_admin)
    assert outcome.code is grpc.StatusCode.PERMISSION_DENIED
    after = audited.lengths(world.a, world.b)
    assert after == {world.a: before[world.a], world.b: before[world.b] + 1}
    record = audited.trail(world.b)[-1]
    assert (record.credential_id, record.status) == (world.b_admin.split(".")[2],
                                                     "PERMISSION_DENIED")
    assert f"tenant={world.a}" in record.summary


def test_a_caller_without_credential_leaves_no_record(audited: Audited) -> None:
    """An anonymous write is UNAUTHENTICATED and in no tenant's trail (strangers cannot fill a
    trail); the server's security log has it."""
    world = audited.world
    before = audited.lengths(world.a, world.b, OPERATOR)
    for path in ("/pharmatrace.v1.Admin/RegisterProduct", "/pharmatrace.v1.Admin/CreateTenant",
                 "/pharmatrace.v1.Lifecycle/Commission"):
        outcome = audited.secured.call(path, request_for(path, world, harmless=True))
        assert outcome.code is grpc.StatusCode.UNAUTHENTICATED
    assert audited.lengths(world.a, world.b, OPERATOR) == before
    logged = security_log.read(audited.secured.codegen.data.root)
    assert [(e["method"].rsplit("/", 1)[1], e["reason"]) for e in logged[-3:]] == [
        ("RegisterProduct", "no_credential"), ("CreateTenant", "no_credential"),
        ("Commission", "no_credential")]


def test_tokens_are_kept_only_as_hashes_and_never_audited(audited: Audited) -> None:
    """No token or secret is in an audit record or ledger file; the ledger holds its SHA-256."""
    world = audited.world
    token, _ = create_token(audited.secured, world.a, world.admin, Role.PHARMACY)
    tokens = [*world.tokens.values(), world.b_admin, token]
    secrets_ = [t.rsplit(".", 1)[1] for t in tokens]
    data = audited.secured.codegen.data
    for trail in (world.a, world.b, OPERATOR):
        for record in audited.trail(trail):
            text = str(record)
            assert not any(secret in text for secret in secrets_), record
    files = [p for p in data.root.rglob("*.mdb")]
    assert files
    raw = b"".join(p.read_bytes() for p in files)
    for secret in secrets_:
        assert secret.encode() not in raw
    assert hashlib.sha256(secrets_[-1].encode()).digest() in raw


# -- tampering ---------------------------------------------------------------------------------

TAMPER = "tamper"


@pytest.fixture(scope="module")
def stopped(loop: _LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose tenant ``tamper`` has an audit trail of a dozen records, with no
    server holding it any more."""
    data = tmp_path_factory.mktemp("audit-tamper")
    codegen, channel = _start(loop, data)
    try:
        secured = Secured.issuance(codegen, channel)
        admin = create_tenant(secured, TAMPER)
        for n in range(1, 9):
            secured.ok("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(
                tenant=TAMPER, party=cpb.Party(party_id=f"P-{n}", name=f"Party {n}",
                                               kind=cpb.PARTY_KIND_PHARMACY)), admin)
        for role in (Role.LINE, Role.PHARMACY):
            create_token(secured, TAMPER, admin, role)
    finally:
        channel.close()
        loop.run(codegen.stop(1.0))
    return data


def _hash(record: lpb.AuditRecord) -> bytes:
    """The record's chain hash, as an attacker who read tracecore.ledger.chain would compute."""
    unhashed = lpb.AuditRecord()
    unhashed.CopyFrom(record)
    unhashed.ClearField("hash")
    return hashlib.sha256(record.prev_hash
                          + unhashed.SerializeToString(deterministic=True)).digest()


class _Trail:
    """The raw audit database of one tenant, opened with lmdb directly, its records opened and
    sealed again with the tenant's key (the worst case: someone holding it)."""

    def __init__(self, txn: lmdb.Transaction, audit: Any, meta: Any) -> None:
        self.txn, self.audit, self.meta = txn, audit, meta
        self.keys = dev_codes(TAMPER)

    def __len__(self) -> int:
        return int(self.txn.stat(self.audit)["entries"])

    def get(self, seq: int) -> lpb.AuditRecord:
        return lpb.AuditRecord.FromString(
            self.keys.open(self.txn.get(seq_key(seq), db=self.audit)))

    def put(self, seq: int, record: lpb.AuditRecord | bytes) -> None:
        data = record if isinstance(record, bytes) else self.keys.seal(
            record.SerializeToString(deterministic=True))
        self.txn.put(seq_key(seq), data, db=self.audit)

    def delete(self, seq: int) -> None:
        assert self.txn.delete(seq_key(seq), db=self.audit)

    def forged(self, seq: int, prev: lpb.AuditRecord) -> lpb.AuditRecord:
        record = lpb.AuditRecord(seq=seq, at_ms=prev.at_ms + 1, credential_id=prev.credential_id,
                                 role=prev.role, peer=prev.peer,
                                 method="/pharmatrace.v1.Admin/AddParty",
                                 summary="tenant=tamper party={party_id=FORGED}", status="OK",
                                 prev_hash=prev.hash)
        record.hash = _hash(record)
        return record

    def set_head(self, seq: int, digest: bytes) -> None:
        self.txn.put(b"audit:head", seq_key(seq) + digest, db=self.meta)


def _changed(trail: _Trail) -> int:
    record = trail.get(3)
    record.status = "OK" if record.status != "OK" else "PERMISSION_DENIED"
    trail.put(3, record)
    return 3


def _changed_and_rehashed(trail: _Trail) -> int:
    record = trail.get(3)
    record.summary += " party={party_id=FORGED}"
    record.hash = _hash(record)
    trail.put(3, record)
    return 4  # record 3 holds together; record 4 no longer follows from it


def _removed(trail: _Trail) -> int:
    trail.delete(3)
    return 3


def _inserted(trail: _Trail) -> int:
    last = len(trail)
    for seq in range(last, 2, -1):
        trail.put(seq + 1, trail.get(seq))
    trail.put(3, trail.forged(3, trail.get(2)))
    trail.set_head(last + 1, trail.get(last + 1).hash)
    return 4  # the forged record holds together; the one after it does not follow


def _appended(trail: _Trail) -> int:
    last = len(trail)
    trail.put(last + 1, trail.forged(last + 1, trail.get(last)))
    return last + 1


def _last_rehashed(trail: _Trail) -> int:
    last = len(trail)
    record = trail.get(last)
    record.status = "OK" if record.status != "OK" else "PERMISSION_DENIED"
    record.hash = _hash(record)
    trail.put(last, record)
    return last  # it holds together with the chain, not with the head


def _reordered(trail: _Trail) -> int:
    third, fourth = trail.get(3), trail.get(4)
    trail.put(3, fourth)
    trail.put(4, third)
    return 3


def _truncated(trail: _Trail) -> int:
    last = len(trail)
    trail.delete(last)
    return last


def _garbled(trail: _Trail) -> int:
    trail.put(5, b"\xff\xff\xff not a record")
    return 5


def _first_garbled(trail: _Trail) -> int:
    """The first record does not decrypt, the others do: an edit, not a wrong key."""
    trail.put(1, b"\xff\xff\xff not a record")
    return 1


TAMPERING: dict[str, Callable[[_Trail], int]] = {
    "changed": _changed, "changed-and-rehashed": _changed_and_rehashed, "removed": _removed,
    "inserted": _inserted, "appended": _appended, "last-rehashed": _last_rehashed,
    "reordered": _reordered,
    "truncated": _truncated, "garbled": _garbled, "first-garbled": _first_garbled,
}


def _tamper(data: Path, how: Callable[[_Trail], int]) -> int:
    """Applies ``how`` to tenant ``tamper``'s audit database; the first bad record expected."""
    env = lmdb.open(str(data / "tenants" / TAMPER / "ledger"), max_dbs=64)
    try:
        audit, meta = env.open_db(b"audit"), env.open_db(b"meta")
        with env.begin(write=True) as txn:
            return how(_Trail(txn, audit, meta))
    finally:
        env.close()


def _verify_audit(data: Path) -> tuple[int, int | None]:
    ledger = DataDir(data, KeySource.dev(), readonly=True).open_ledger(TAMPER)
    try:
        return Access(ledger).verify_audit()
    finally:
        ledger.close()


def _audit_verify_command(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*pharmatrace_command(), "audit", "verify", "--data", str(data), "--dev"],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)


def test_an_untouched_trail_verifies(stopped: Path, tmp_path: Path) -> None:
    """An untouched trail verifies; `pharmatrace audit verify` exits 0: chain intact."""
    data = shutil.copytree(stopped, tmp_path / "data")
    checked, bad = _verify_audit(data)
    assert bad is None and checked >= 10
    result = _audit_verify_command(data)
    assert result.returncode == 0, result.stderr
    assert f"{TAMPER}: audit trail: {checked} records, chain intact" in result.stdout


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_an_edited_trail_is_found(stopped: Path, tmp_path: Path, how: str) -> None:
    """Any edit of the audit database is found; `pharmatrace audit verify` exits 1 saying where."""
    data = shutil.copytree(stopped, tmp_path / "data")
    _tamper(data, TAMPERING[how])
    checked, bad = _verify_audit(data)
    assert bad is not None and checked == bad - 1
    result = _audit_verify_command(data)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"{TAMPER}: audit trail: chain BROKEN at record {bad} "
            f"({checked} records before it verify)") in result.stdout.splitlines()


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_an_edited_trail_names_the_first_record_that_does_not_verify(
        stopped: Path, tmp_path: Path, how: str) -> None:
    """The record named is the first that fails: changed, missing, moved, or after a forgery."""
    data = shutil.copytree(stopped, tmp_path / "data")
    first_bad = _tamper(data, TAMPERING[how])
    assert _verify_audit(data) == (first_bad - 1, first_bad)


def _with_wrong_key(data: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``pharmatrace <command> --data data`` given a key-encryption passphrase other than the
    one the data directory was written under."""
    env = {k: v for k, v in os.environ.items() if k not in (PASSPHRASE_ENV, KEY_FILE_ENV)}
    env[PASSPHRASE_ENV] = "not the passphrase this data directory was written under"
    return subprocess.run([*pharmatrace_command(), *command, "--data", str(data)], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)


def test_audit_verify_and_doctor_with_the_wrong_key_say_so_rather_than_a_broken_chain(
        stopped: Path) -> None:
    """Given the wrong key-encryption key, `audit verify` and `doctor` fail saying that the key
    does not open the records, not that the chain is broken at record 1."""
    verified = _with_wrong_key(stopped, "audit", "verify")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert f"{TAMPER}: audit trail: the key does not open its records" in verified.stdout
    doctor = _with_wrong_key(stopped, "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert (f"{TAMPER}: codes at rest: PROBLEM: the key does not open this ledger's codes or "
            "records") in doctor.stdout
    assert "BROKEN" not in verified.stdout + doctor.stdout
    # With the right key, the same trail verifies.
    assert _audit_verify_command(stopped).returncode == 0


def test_doctor_with_the_wrong_key_says_so_once_rather_than_every_code_undecodable(
        tmp_path: Path) -> None:
    """A ledger with codes and pools, checked with the wrong key: doctor says the key does not
    open them, not that each code cannot be decoded and every pool and tally disagrees; with
    the right key it finds nothing wrong."""
    data = DataDir(tmp_path, KeySource.dev())
    try:
        tenant = data.create("acme", "Acme", now_ms())
        tenant.ledger.register_product(cpb.Product(gtin="09506000134352", name="Testol"),
                                       now_ms())
        tenant.ledger.add_batch(cpb.Batch(product="09506000134352", lot="L1",
                                          expires_on="2031-12-31"), now_ms())
        issued = issuance.issue(tenant, issuance.pool_request(
            "p1", "09506000134352", "L1", 1, 50), 50, now_ms)
        assert sum(len(chunk.serials) for chunk in issued) == 50
    finally:
        data.close()
    wrong = _with_wrong_key(tmp_path, "doctor")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    problems = [line for line in wrong.stdout.splitlines() if ": PROBLEM: " in line]
    assert [line.split(": PROBLEM: ")[0] for line in problems] == ["acme: key ring",
                                                                   "acme: codes at rest"]
    right = subprocess.run([*pharmatrace_command(), "doctor", "--data", str(tmp_path), "--dev"],
                           capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert right.returncode == 0, right.stdout + right.stderr
