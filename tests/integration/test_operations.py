"""Operations: a tenant taken offline and back while the others are served; damaged files that
fail only their tenant, named; a full ledger that refuses writes but keeps serving reads and
resumes when allowed to grow; readers that follow a growing map; backups taken under write load
that restore into a data directory verifying the same; and `pharmatrace doctor`.

Most tests use the session's servers (see conftest.py); those that need a server of their own
(a tiny ledger limit, a restored or damaged data directory) run `pharmatrace serve` as a process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import ledger_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2 as lcpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb
from prometheus_client import CollectorRegistry
from pyrage import x25519

from bench.faults import Clients, Server
from codegen_svc import app as codegen_app
from tests.integration.conftest import GTIN, LOT, RPC_TIMEOUT_S, Api, Make, Servers
from tests.ledgers import dev_codes
from tracecore.codes import parse
from tracecore.keys import KeySource
from tracecore.ledger.records import pool_code_key, seq_key
from tracecore.ledger.store import Ledger
from tracerpc.metrics import Metrics
from verify_svc.workers import WorkerConfig, WorkerPool

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
GENUINE = vpb.VERDICT_GENUINE
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pharmatrace_cli", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def _set_online(api: Api, tenant: str, online: bool, reason: str = "") -> bool:
    response = api.admin.SetTenantOnline(apb.SetTenantOnlineRequest(
        tenant=tenant, online=online, reason=reason), timeout=RPC_TIMEOUT_S)
    return response.released


def _genuine(api: Api, tenant: str, codes: list[str]) -> bool:
    return all(v == GENUINE for v in api.verify_batch(tenant, codes).verdicts)


def _commission(issue_channel: grpc.Channel, tenant: str, codes: list[str]
                ) -> lcpb.LifecycleResponse:
    return lifecycle_pb2_grpc.LifecycleStub(issue_channel).Commission(
        lcpb.CommissionRequest(tenant=tenant, codes=codes), timeout=RPC_TIMEOUT_S)


# -- maintenance ---------------------------------------------------------------------------------


def test_a_tenant_taken_offline_answers_unavailable_on_both_services_while_others_are_served(
        api: Api, make: Make, issue_channel: grpc.Channel,
        refused: Callable[..., str]) -> None:
    """While a tenant is offline every call about it, issuance and verification alike, answers
    UNAVAILABLE with the reason; another tenant is served throughout; once back online its codes
    verify as before and it issues again."""
    down, up = make.tenant(), make.tenant()
    make.gs1(down)
    make.gs1(up)
    down_codes = api.codes(down, GTIN, 200, lot=LOT)
    assert _genuine(api, down, down_codes)   # the verification worker has it open

    assert _set_online(api, down, False, "restore drill")

    calls: list[Callable[[], object]] = [
        lambda: api.codes(down, GTIN, 10),
        lambda: api.admin.GetProduct(apb.GetProductRequest(tenant=down, product=GTIN),
                                     timeout=RPC_TIMEOUT_S),
        lambda: _commission(issue_channel, down, down_codes[:5]),
        lambda: api.verify(down, down_codes[0]),
        lambda: api.verify_batch(down, down_codes),
    ]
    for call in calls:
        message = refused(UNAVAILABLE, None, call)
        assert down in message and "restore drill" in message
    up_codes = api.codes(up, GTIN, 100, lot=LOT)
    assert _genuine(api, up, up_codes)

    _set_online(api, down, True)
    assert _genuine(api, down, down_codes)
    assert _genuine(api, down, api.codes(down, GTIN, 10))


def test_damaged_tenant_files_fail_only_that_tenant_naming_the_file_until_repaired(
        api: Api, make: Make, servers: Servers, refused: Callable[..., str]) -> None:
    """A tampered key ring (FAILED_PRECONDITION) or a missing ledger file (DATA_LOSS) fails the
    tenant's calls on both services with a message naming tenant and file, never creating an
    empty ledger in its place; another tenant is served throughout; once the file is put back
    the tenant is served again at once."""
    broken, fine = make.tenant(), make.tenant()
    make.gs1(broken)
    make.gs1(fine)
    codes = api.codes(broken, GTIN, 50)
    assert _genuine(api, broken, codes)
    path = servers.data / "tenants" / broken
    ring = (path / "keyring.bin").read_bytes()
    get_product = lambda: api.admin.GetProduct(  # noqa: E731
        apb.GetProductRequest(tenant=broken, product=GTIN), timeout=RPC_TIMEOUT_S)

    _set_online(api, broken, False)
    (path / "keyring.bin").write_bytes(ring[:-8] + bytes(8))
    _set_online(api, broken, True)
    for call in (get_product, lambda: api.verify(broken, codes[0])):
        message = refused(grpc.StatusCode.FAILED_PRECONDITION, None, call)
        assert broken in message and "keyring.bin" in message
    assert _genuine(api, fine, api.codes(fine, GTIN, 20))

    _set_online(api, broken, False)
    (path / "keyring.bin").write_bytes(ring)
    (path / "ledger" / "data.mdb").rename(path / "data.mdb.aside")
    _set_online(api, broken, True)
    for call in (get_product, lambda: api.verify(broken, codes[0])):
        message = refused(grpc.StatusCode.DATA_LOSS, None, call)
        assert broken in message and "ledger/data.mdb is missing" in message
    assert not (path / "ledger" / "data.mdb").exists()
    assert _genuine(api, fine, api.codes(fine, GTIN, 20))

    _set_online(api, broken, False)
    (path / "data.mdb.aside").rename(path / "ledger" / "data.mdb")
    _set_online(api, broken, True)
    assert get_product().product.gtin == GTIN
    assert _genuine(api, broken, codes)


def test_serve_names_a_damaged_tenant_at_start_up_and_serves_the_others(tmp_path: Path) -> None:
    """`serve` on a data directory where one tenant's key ring is damaged and another's ledger
    is missing logs both, naming tenant and file, and serves the healthy tenant."""
    data = tmp_path / "data"
    server = Server(data, tmp_path, workers=1)
    server.start()
    clients = Clients(server)
    for name in ("acme", "beta"):
        clients.admin.CreateTenant(apb.CreateTenantRequest(tenant=name, name=name),
                                   timeout=RPC_TIMEOUT_S)
    clients.close()
    assert server.stop() == 0
    ring = data / "tenants" / "acme" / "keyring.bin"
    ring.write_bytes(ring.read_bytes()[:-8] + bytes(8))
    (data / "tenants" / "beta" / "ledger" / "data.mdb").unlink()

    server.start()
    try:
        log = server.log.read_text()
        assert "tenant acme cannot be served" in log and "keyring.bin" in log
        assert "tenant beta cannot be served" in log and "ledger/data.mdb is missing" in log
        clients = Clients(server)
        clients.admin.RegisterProduct(apb.RegisterProductRequest(tenant="demo", product=(
            cpb.Product(gtin=GTIN, name="Amoxicillin"))), timeout=RPC_TIMEOUT_S)
        chunks = clients.issuance.RequestCodes(ipb.RequestCodesRequest(
            tenant="demo", product=GTIN, count=10, request_id="r1"), timeout=RPC_TIMEOUT_S)
        assert sum(len(c.serials) for c in chunks) == 10
        with pytest.raises(grpc.RpcError) as caught:
            clients.admin.GetProduct(apb.GetProductRequest(tenant="acme", product=GTIN),
                                     timeout=RPC_TIMEOUT_S)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "acme" in caught.value.details() and "keyring.bin" in caught.value.details()
        assert not (data / "tenants" / "beta" / "ledger" / "data.mdb").exists()
        clients.close()
    finally:
        server.kill()


# -- a full ledger, a growing ledger -------------------------------------------------------------


def test_a_full_ledger_refuses_writes_keeps_serving_reads_and_resumes_when_allowed_to_grow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 1 MiB limit a code pool stops RESOURCE_EXHAUSTED naming the tenant; the codes
    received verify and the pool reads back; `maintenance ledger-limit` lets it grow without a
    restart and a retry of the request id completes the pool; the ledger checks out whole."""
    monkeypatch.setenv("PHARMATRACE_MAX_MAP_SIZE", "1MiB")
    server = Server(tmp_path / "data", tmp_path, workers=1)
    server.start()
    try:
        clients = Clients(server)
        clients.admin.RegisterProduct(apb.RegisterProductRequest(tenant="demo", product=(
            cpb.Product(gtin=GTIN, name="Amoxicillin"))), timeout=RPC_TIMEOUT_S)
        request = ipb.RequestCodesRequest(tenant="demo", product=GTIN, count=40_000,
                                          chunk_size=1_000, request_id="big")
        received: list[str] = []
        with pytest.raises(grpc.RpcError) as caught:
            for chunk in clients.issuance.RequestCodes(request, timeout=RPC_TIMEOUT_S):
                received += [f"(01){GTIN}(21){s}" for s in chunk.serials]
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "demo" in caught.value.details()
        assert 0 < len(received) < 40_000
        answer = clients.verification.VerifyBatch(
            vpb.VerifyBatchRequest(tenant="demo", codes=received), timeout=RPC_TIMEOUT_S)
        assert set(answer.verdicts) == {GENUINE}
        pool = clients.issuance.GetPool(ipb.GetPoolRequest(tenant="demo", request_id="big"),
                                        timeout=RPC_TIMEOUT_S).pool
        assert pool.issued == len(received)

        env = {**os.environ, "PHARMATRACE_ISSUE_ADDR": f"127.0.0.1:{server.ports['issue']}"}
        grown = _cli("maintenance", "ledger-limit", "--tenant", "demo", "64MiB", env=env)
        assert grown.returncode == 0, grown.stderr
        again = [f"(01){GTIN}(21){s}" for chunk in clients.issuance.RequestCodes(
            request, timeout=RPC_TIMEOUT_S) for s in chunk.serials]
        assert again[:len(received)] == received
        assert len(again) == len(set(again)) == 40_000
        answer = clients.verification.VerifyBatch(
            vpb.VerifyBatchRequest(tenant="demo", codes=again), timeout=RPC_TIMEOUT_S)
        assert set(answer.verdicts) == {GENUINE}
        clients.close()
        assert server.stop() == 0
    finally:
        server.kill()
    doctor = _cli("doctor", "--data", str(tmp_path / "data"), "--dev")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


class _Loop:
    """An event loop in a thread, for an issuance server of this test's own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_verification_worker_keeps_answering_while_the_writer_grows_the_map(
        tmp_path: Path) -> None:
    """Writer and verification worker both start with a 1 MiB map; the writer grows it many
    times over while issuing; the worker, another process, adopts the new size and verifies
    every code, old and new."""
    loop = _Loop()
    codegen = loop.run(codegen_app.start(tmp_path, KeySource.dev(), "127.0.0.1:0",
                                         Metrics(CollectorRegistry()), tls=None,
                                         authenticate=False, map_size=MIB))
    workers = WorkerPool(WorkerConfig(tmp_path, "127.0.0.1", 0, dev_keys=True, tls=None,
                                      grace_s=1.0, authenticate=False, map_size=MIB), workers=1)
    try:
        verify_port = workers.start()
        issue = grpc.insecure_channel(f"127.0.0.1:{codegen.port}")
        verify = grpc.insecure_channel(f"127.0.0.1:{verify_port}")
        clients = Api(*_stubs(issue, verify))
        clients.admin.CreateTenant(apb.CreateTenantRequest(tenant="grow", name="Grow"),
                                   timeout=RPC_TIMEOUT_S)
        clients.admin.RegisterProduct(apb.RegisterProductRequest(tenant="grow", product=(
            cpb.Product(gtin=GTIN, name="Amoxicillin"))), timeout=RPC_TIMEOUT_S)
        first = clients.codes("grow", GTIN, 500)
        assert _genuine(clients, "grow", first)
        more = clients.codes("grow", GTIN, 60_000, chunk_size=5_000)
        assert codegen.data.get("grow").ledger.env.map_size >= 8 * MIB
        assert _genuine(clients, "grow", first + more)
        issue.close()
        verify.close()
    finally:
        workers.stop(1.0)
        loop.run(codegen.stop(1.0))
        loop.close()


def _stubs(issue: grpc.Channel, verify: grpc.Channel) -> tuple[Any, Any, Any]:
    from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, verification_pb2_grpc

    return (admin_pb2_grpc.AdminStub(issue), issuance_pb2_grpc.CodeIssuanceStub(issue),
            verification_pb2_grpc.VerificationStub(verify))


# -- backup and restore --------------------------------------------------------------------------


def _events(channel: grpc.Channel, tenant: str) -> list[tpb.TracedEvent]:
    stub = trace_pb2_grpc.TraceStub(channel)
    out: list[tpb.TracedEvent] = []
    token = ""
    while True:
        page = stub.ListEvents(tpb.ListEventsRequest(tenant=tenant, page_size=1000,
                                                     page_token=token), timeout=RPC_TIMEOUT_S)
        out += page.events
        token = page.next_page_token
        if not token:
            return out


def test_a_backup_taken_under_write_load_restores_into_a_new_data_directory_verifying_the_same(
        api: Api, make: Make, servers: Servers, issue_channel: grpc.Channel,
        verify_channel: grpc.Channel, tmp_path: Path) -> None:
    """`backup` while pools are issued and commissioned; `restore` into a new data directory;
    a server on it has every event up to the manifest's sequence, exactly, and no later one;
    every code received before the backup began verifies GENUINE, and every code it has
    answers as the source did then: ACTIVE when commissioned by an event in the backup."""
    tenant = make.tenant()
    make.gs1(tenant)
    pools = [api.codes(tenant, GTIN, 1_000, lot=LOT)]
    commissioned = [(_commission(issue_channel, tenant, pools[0][:300]).event_seqs[0],
                     pools[0][:300])]
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        try:
            while not stop.is_set():
                codes = api.codes(tenant, GTIN, 400, lot=LOT, chunk_size=100)
                pools.append(codes)
                seq = _commission(issue_channel, tenant, codes[:150]).event_seqs[0]
                commissioned.append((seq, codes[:150]))
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=load)
    writer.start()
    try:
        while len(pools) < 3 and writer.is_alive():
            threading.Event().wait(0.01)
        before = [c for pool in list(pools) for c in pool]
        backup = tmp_path / "backup"
        taken = _cli("backup", "--data", str(servers.data), "--tenant", tenant, str(backup),
                     "--dev")
        during = len(pools)
        while len(pools) < during + 2 and writer.is_alive():
            threading.Event().wait(0.01)
    finally:
        stop.set()
        writer.join(RPC_TIMEOUT_S)
    assert not errors
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads((backup / "manifest.json").read_text())
    last = manifest["last_event_seq"]

    restored = _cli("restore", str(backup), "--data", str(tmp_path / "restored"), "--dev")
    assert restored.returncode == 0, restored.stderr
    server = Server(tmp_path / "restored", tmp_path, workers=1)
    server.start()
    try:
        clients = Clients(server)
        source_events = _events(verify_channel, tenant)
        assert _events(clients.verify, tenant) == [e for e in source_events if e.seq <= last]
        assert last < source_events[-1].seq, "no write happened after the backup"

        every = [c for pool in pools for c in pool]
        active = {c for seq, codes in commissioned if seq <= last for c in codes}
        answer = clients.verification.VerifyBatch(
            vpb.VerifyBatchRequest(tenant=tenant, codes=every), timeout=RPC_TIMEOUT_S)
        kept = {code: status for code, verdict, status
                in zip(every, answer.verdicts, answer.statuses, strict=True) if verdict == GENUINE}
        assert set(before) <= kept.keys()
        assert len(kept) == manifest["codes"]
        assert all(status == (cpb.CODE_STATUS_ACTIVE if code in active
                              else cpb.CODE_STATUS_ISSUED) for code, status in kept.items())
        assert set(answer.verdicts) <= {GENUINE, vpb.VERDICT_UNKNOWN}
        clients.close()
    finally:
        server.kill()


def test_restore_refuses_a_damaged_backup_a_served_tenant_and_an_existing_one_unforced(
        api: Api, make: Make, servers: Servers, tmp_path: Path) -> None:
    """`restore` refuses a backup whose file does not match its checksum (naming the file), a
    backup of another tenant, a tenant a running server has open (even with --force), and an
    existing tenant without --force; into a tenant taken offline it replaces the tenant, warning
    that codes minted since verify as UNKNOWN, which stays offline until brought back, and then
    verifies as the backup did."""
    tenant = make.tenant()
    make.gs1(tenant)
    codes = api.codes(tenant, GTIN, 100)
    backup = tmp_path / "backup"
    assert _cli("backup", "--data", str(servers.data), "--tenant", tenant,
                str(backup), "--dev").returncode == 0
    data = str(servers.data)

    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    ledger_file = damaged / "ledger" / "data.mdb.age"
    blob = bytearray(ledger_file.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    ledger_file.write_bytes(bytes(blob))
    refused = _cli("restore", str(damaged), "--data", str(tmp_path / "new"), "--dev")
    assert refused.returncode == 1 and "ledger/data.mdb.age" in refused.stderr
    refused = _cli("restore", str(backup), "--data", str(tmp_path / "new"), "--tenant", "other")
    assert refused.returncode == 1 and tenant in refused.stderr

    refused = _cli("restore", str(backup), "--data", data, "--force", "--dev")
    assert refused.returncode == 1 and "being served" in refused.stderr
    assert _set_online(api, tenant, False, "restore")
    refused = _cli("restore", str(backup), "--data", data, "--dev")
    assert refused.returncode == 1 and "--force" in refused.stderr
    done = _cli("restore", str(backup), "--data", data, "--force", "--dev")
    assert done.returncode == 0, done.stderr
    assert "stays offline" in done.stdout
    assert "minted after this backup" in done.stderr and "UNKNOWN" in done.stderr
    with pytest.raises(grpc.RpcError) as caught:
        api.verify(tenant, codes[0])
    assert caught.value.code() == UNAVAILABLE
    _set_online(api, tenant, True)
    assert _genuine(api, tenant, codes)


def test_a_backup_holds_no_serial_in_clear_and_a_recovery_identity_restores_it(
        api: Api, make: Make, servers: Servers, tmp_path: Path) -> None:
    """A backup taken with the key-encryption key and an offline recovery key (`--recipient`)
    holds no serial and no code key in any of its files; without a key it cannot be restored
    (the error names --identity); with only the recovery identity file it restores, and a server
    on the restored data verifies every code GENUINE."""
    tenant = make.tenant()
    make.gs1(tenant)
    codes = api.codes(tenant, GTIN, 200)
    recovery = x25519.Identity.generate()
    identity_file = tmp_path / "recovery.key"
    identity_file.write_text(f"# offline recovery key\n{recovery}\n")
    backup = tmp_path / "backup"
    taken = _cli("backup", "--data", str(servers.data), "--tenant", tenant, str(backup), "--dev",
                 "--recipient", str(recovery.to_public()))
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads((backup / "manifest.json").read_text())
    assert str(recovery.to_public()) in manifest["encrypted_to"]
    assert len(manifest["encrypted_to"]) == 2
    assert "ledger/data.mdb.age" in manifest["files"]
    blobs = {p.name: p.read_bytes() for p in backup.rglob("*") if p.is_file()}
    for code in codes[:50]:
        serial = code.split("(21)")[1].encode()
        key = parse(code).code.key()
        assert not any(serial in blob or key in blob for blob in blobs.values()), code

    refused = _cli("restore", str(backup), "--data", str(tmp_path / "nokey"), "--allow-unsigned",
                   env={k: v for k, v in os.environ.items() if not k.startswith("PHARMATRACE_")})
    assert refused.returncode == 1 and "--identity" in refused.stderr
    assert not (tmp_path / "nokey" / "tenants" / tenant).exists()

    done = _cli("restore", str(backup), "--data", str(tmp_path / "restored"), "--allow-unsigned",
                "--identity", str(identity_file),
                env={k: v for k, v in os.environ.items() if not k.startswith("PHARMATRACE_")})
    assert done.returncode == 0, done.stderr
    server = Server(tmp_path / "restored", tmp_path, workers=1)
    server.start()
    try:
        clients = Clients(server)
        answer = clients.verification.VerifyBatch(
            vpb.VerifyBatchRequest(tenant=tenant, codes=codes), timeout=RPC_TIMEOUT_S)
        assert set(answer.verdicts) == {GENUINE}
        clients.close()
    finally:
        server.kill()


# -- doctor --------------------------------------------------------------------------------------


def _doctor(servers: Servers, tenant: str) -> subprocess.CompletedProcess[str]:
    return _cli("doctor", "--data", str(servers.data), "--tenant", tenant, "--dev")


def test_doctor_finds_a_busy_tenant_healthy_while_it_is_served(
        api: Api, make: Make, servers: Servers, issue_channel: grpc.Channel) -> None:
    """After issuing, commissioning and voiding, `doctor` (beside the running server) finds the
    chains intact, the counters and pools agreeing with the codes, and exits 0."""
    tenant = make.tenant()
    make.gs1(tenant)
    codes = api.codes(tenant, GTIN, 600, lot=LOT)
    assert _commission(issue_channel, tenant, codes[:400]).applied
    assert api.give_back(tenant, codes[500:]).voided == 100
    found = _doctor(servers, tenant)
    assert found.returncode == 0, found.stdout
    assert "PROBLEM" not in found.stdout
    for check in ("audit trail: ok", "event journal: ok", "counters: ok", "batch regions: ok",
                  "pools: ok", "key ring: ok", "signing keys: ok"):
        assert check in found.stdout


def test_doctor_names_a_miscounted_counter_a_code_missing_from_its_pool_and_an_altered_record(
        api: Api, make: Make, servers: Servers, issue_channel: grpc.Channel) -> None:
    """A counter off by one, a batch's units in a region off by one, a pool entry removed and an
    audit record edited behind the ledger's back (the tenant offline): `doctor` names each and
    exits 1."""
    tenant = make.tenant()
    make.gs1(tenant)
    codes = api.codes(tenant, GTIN, 300, lot=LOT)
    _commission(issue_channel, tenant, codes[:100])
    assert _set_online(api, tenant, False, "tampering, for a test")
    ledger = Ledger(servers.data / "tenants" / tenant / "ledger", tenant=tenant,
                    codes=dev_codes(tenant))
    try:
        def tamper(txn: Any) -> None:
            counters = ledger.db["counters"]
            key, value = next((bytes(k), bytes(v)) for k, v in txn.cursor(db=counters)
                              if bytes(k)[:1] == b"P")
            txn.put(key, (int.from_bytes(value, "big", signed=True) + 1).to_bytes(
                8, "big", signed=True), db=counters)
            regions = ledger.db["batch_regions"]
            key, value = next((bytes(k), bytes(v)) for k, v in txn.cursor(db=regions))
            txn.put(key, (int.from_bytes(value, "big", signed=True) - 1).to_bytes(
                8, "big", signed=True), db=regions)
            pool_ref = lpb.PoolRecord.FromString(bytes(next(iter(
                txn.cursor(db=ledger.db["pools"])))[1])).pool_ref
            txn.delete(pool_code_key(pool_ref, 299), db=ledger.db["pool_codes"])
            audit = lpb.AuditRecord.FromString(ledger.codes.open(
                bytes(txn.get(seq_key(1), db=ledger.db["audit"]))))
            audit.summary = "nothing happened"
            txn.put(seq_key(1), ledger.codes.seal(audit.SerializeToString(deterministic=True)),
                    db=ledger.db["audit"])

        ledger.env.write(tamper)
    finally:
        ledger.close()
    found = _doctor(servers, tenant)
    assert found.returncode == 1
    assert "counters: PROBLEM: 1 report counters disagree" in found.stdout
    assert "batch regions: PROBLEM: 1 units per batch and region disagree" in found.stdout
    assert "pools: PROBLEM" in found.stdout and "issued 300" in found.stdout
    assert "audit trail: PROBLEM: chain BROKEN at record 1" in found.stdout
    assert "event journal: ok" in found.stdout


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI runs read the key source from --dev only."""
    monkeypatch.delenv("PHARMATRACE_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("PHARMATRACE_KEY_FILE", raising=False)
    yield
