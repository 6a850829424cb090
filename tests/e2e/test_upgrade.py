"""Upgrading a data directory written by pharmatrace 0.1.0 (ledger format 1): refused until
migrated, migrated one tenant at a time beside a running server, every record kept, a kill at any
point resumed, a failing step undone, a newer ledger refused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from pharmatrace.v1 import ledger_pb2 as lpb

from tests.e2e.conftest import START_TIMEOUT_S, Server, Servers, pharmatrace_command, run_cli
from tests.ledgers import dev_codes
from tracecore.credentials import OPERATOR
from tracecore.ledger import format as ledger_format
from tracecore.ledger.access import Access
from tracecore.ledger.chain import SEAL_KEY
from tracecore.ledger.contents import recount, stored_all
from tracecore.ledger.migrations import to_2, to_3, to_4
from tracecore.ledger.sscc_pools import SEALED_MARK as SSCC_SEALED
from tracecore.ledger.store import DATABASES, Ledger

pytestmark = pytest.mark.timeout(300)

FIXTURE = Path(__file__).parent.parent / "data" / "format1"
TENANT = "acme"
GTIN = "09501101530003"
#: What the fixture's packs answer when verified (see tests/data/format1/make_fixture.py).
STATUSES = Counter({"ACTIVE": 25, "DISPENSED": 3, "VOIDED": 2, "RECALLED": 5})

Dump = dict[str, list[tuple[bytes, bytes]]]


def _install_fixture(data: Path) -> Path:
    """A data directory holding the format-1 tenant ``acme`` and operator store."""
    tenant = data / "tenants" / TENANT
    shutil.copytree(FIXTURE / "tenant", tenant)
    shutil.copytree(FIXTURE / "operator", data / "operator")
    return tenant / "ledger"


def _dump(path: Path, owner: str) -> Dump:
    """Every key and value of every database of a ledger, duplicates included."""
    ledger = Ledger(path, tenant=owner, codes=dev_codes(owner), readonly=True)
    try:
        with ledger.env.read() as txn:
            return {name: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=ledger.db[name])]
                    for name in DATABASES if name in ledger.db}
    finally:
        ledger.close()


def _audit(path: Path, owner: str) -> tuple[list[lpb.AuditRecord], int | None]:
    ledger = Ledger(path, tenant=owner, codes=dev_codes(owner), readonly=True)
    try:
        access = Access(ledger)
        return access.audit_records(), access.verify_audit()[1]
    finally:
        ledger.close()


def _format(path: Path, owner: str) -> int:
    ledger = Ledger(path, tenant=owner, codes=dev_codes(owner), readonly=True)
    try:
        return ledger_format.version_of(ledger)
    finally:
        ledger.close()


def _tallied(path: Path, owner: str) -> bool:
    """Whether the contents tallies stored are what a recount of the codes gives."""
    ledger = Ledger(path, tenant=owner, codes=dev_codes(owner), readonly=True)
    try:
        with ledger.env.read() as txn:
            return stored_all(txn, ledger.db["contents"]) == {
                container: dict(rows) for container, rows in recount(ledger, txn).items()}
    finally:
        ledger.close()


def _at_rest(before: Dump, owner: str) -> Dump:
    """A format-1 or -2 ledger's records as format 3 keeps them: every code's ledger key (as a
    key or a value) in its stored form; events stay as they are here, compared opened."""
    keys = dev_codes(owner)
    out = dict(before)
    for name, key_is_code, value_is_code in to_3.TABLES:
        out[name] = sorted((keys.stored(k) if key_is_code else k,
                            keys.stored(v) if value_is_code else v)
                           for k, v in before.get(name, []))
    return out


def _assert_carried(before: Dump, path: Path, owner: str) -> None:
    """Every record of the format-1 ledger is in the migrated one: codes, events, counters,
    pools, master data, credentials, codes under their stored keys and events sealed; the audit
    trail gained exactly the migrations' records and still verifies; meta gained only the format
    record."""
    after = _dump(path, owner)
    if owner != OPERATOR:  # a tenant's chains are sealed
        opened = dev_codes(owner).open
        for chain in to_3.CHAINS:
            after[chain] = [(k, opened(v)) for k, v in after.get(chain, [])]
    before = _at_rest(before, owner)
    for name in DATABASES:
        if name in ("meta", "audit", "contents"):
            continue
        assert after.get(name, []) == before.get(name, []), f"database {name} changed"
    # Format 4 tallies what each container holds.
    assert _tallied(path, owner)
    old_meta, new_meta = dict(before["meta"]), dict(after["meta"])
    changed = {k for k in old_meta.keys() | new_meta.keys() if old_meta.get(k) != new_meta.get(k)}
    # The running server also seals the chains' heads (chain.SEAL_KEY) once they moved, and
    # marks the SSCC pools sealed when it opens the ledger.
    assert changed - {SEAL_KEY, SSCC_SEALED} == {ledger_format.VERSION_KEY,
                                                 ledger_format.OWNER_KEY, b"audit:head"}
    assert after["audit"][:len(before["audit"])] == before["audit"]
    records, broken = _audit(path, owner)
    assert broken is None
    assert len(records) == len(before["audit"]) + 3
    assert [r.method for r in records[-3:]] == [to_2.METHOD, to_3.METHOD, to_4.METHOD]
    assert "format 1 -> 2" in records[-3].summary and "format 2 -> 3" in records[-2].summary
    assert "format 3 -> 4" in records[-1].summary
    assert _format(path, owner) == ledger_format.CURRENT


def _verify_all(server_env: dict[str, str], cwd: Path, codes: list[str]) -> Counter[str]:
    result = run_cli(["verify", "--tenant", TENANT, "--json", *codes], env=server_env, cwd=cwd)
    assert result.stdout, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(a["verdict"] == "VERDICT_GENUINE" for a in answers)
    return Counter(a["status"].removeprefix("CODE_STATUS_") for a in answers)


def _unit_codes(dump: Dump) -> list[str]:
    prefix = b"G" + GTIN.encode()
    return [f"(01){GTIN}(21){key[len(prefix):].decode()}" for key, value in dump["codes"]
            if key.startswith(prefix) and value[1] == 1]


def test_format1_tenant_is_refused_then_migrated_beside_a_running_server(
        servers: Servers, tmp_path: Path) -> None:
    """A 0.1.0 tenant is not served (the answer says to migrate it) while the others are;
    `tenant migrate --tenant` brings it to the current format beside the running server, after
    which every pack answers as before and every record of the old ledger is there unchanged."""
    data = tmp_path / "data"
    ledger = _install_fixture(data)
    before = _dump(ledger, TENANT)
    operator_before = _dump(data / "operator" / "ledger", "_operator")
    assert before["codes"] and before["events"] and before["counters"] and before["audit"]
    assert operator_before["credentials"]
    codes = _unit_codes(before)
    server = servers.start(data)
    refused = run_cli(["verify", "--tenant", TENANT, codes[0]], env=server.env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "format 1" in refused.stderr and "pharmatrace tenant migrate" in refused.stderr
    assert "tenant acme cannot be served" in server.log_text()

    listed = run_cli(["tenant", "migrate", "--data", str(data), "--list"], env=server.env,
                     cwd=tmp_path)
    assert "acme: format 1 (needs `pharmatrace tenant migrate`)" in listed.stdout
    migrated = run_cli(["tenant", "migrate", "--data", str(data), "--tenant", TENANT, "--dev"],
                       env=server.env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "tenant acme: migrated from format 1 to 4" in migrated.stdout
    demo = run_cli(["verify", "--tenant", "demo", "hello"], env=server.env, cwd=tmp_path)
    assert "INVALID_FORMAT" in demo.stdout  # the other tenant answered throughout

    assert _verify_all(server.env, tmp_path, codes) == STATUSES
    doctor = run_cli(["doctor", "--data", str(data), "--tenant", TENANT, "--dev"],
                     env=server.env, cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout
    assert "acme: format: ok: format 4" in doctor.stdout
    server.terminate()
    _assert_carried(before, ledger, TENANT)

    # The operator store is migrated only while no server has it open.
    rest = run_cli(["tenant", "migrate", "--data", str(data), "--dev"], env=server.env,
                   cwd=tmp_path)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "the operator store: step to format 2" in rest.stdout
    _assert_carried(operator_before, data / "operator" / "ledger", "_operator")


@pytest.mark.parametrize("kill_after", ["offline", "backed up", "step to format 2",
                                        "step to format 3"])
def test_a_killed_migration_resumes(tmp_path: Path, kill_after: str) -> None:
    """A migration killed (SIGKILL) after any of its phases is picked up by running it again,
    and ends with every record carried and the tenant online."""
    data = tmp_path / "data"
    ledger = _install_fixture(data)
    before = _dump(ledger, TENANT)
    first = subprocess.Popen([*pharmatrace_command(), "tenant", "migrate", "--data", str(data),
                              "--tenant", TENANT, "--dev"], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    for line in first.stdout:
        if kill_after in line:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(30)
    assert first.returncode == -signal.SIGKILL
    state = data / "migrations" / TENANT / "state.json"
    assert state.exists() or _format(ledger, TENANT) == ledger_format.CURRENT

    again = run_cli(["tenant", "migrate", "--data", str(data), "--tenant", TENANT, "--dev"],
                    env={}, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming the migration from format 1" in again.stdout
    assert not state.exists()
    assert not (data / "tenants" / TENANT / "offline").exists()
    _assert_carried(before, ledger, TENANT)


def test_a_failing_step_restores_the_backup(tmp_path: Path) -> None:
    """When a step fails (here: a damaged batch record the step must read), the tenant is put
    back exactly as it was before the migration and left offline with the reason."""
    data = tmp_path / "data"
    ledger_path = _install_fixture(data)
    ledger = Ledger(ledger_path, tenant=TENANT, codes=dev_codes(TENANT))

    def damage(txn: object) -> None:
        txn.delete(b"index:material_lots", db=ledger.db["meta"])  # type: ignore[attr-defined]
        txn.put((1).to_bytes(4, "big"), b"\xff\xff\xff", db=ledger.db["batches"])  # type: ignore[attr-defined]

    ledger.env.write(damage)
    ledger.close()
    before = _dump(ledger_path, TENANT)
    failed = run_cli(["tenant", "migrate", "--data", str(data), "--tenant", TENANT, "--dev"],
                     env={}, cwd=tmp_path)
    assert failed.returncode == 1
    assert "the migration failed" in failed.stdout and "was restored" in failed.stdout
    assert _dump(ledger_path, TENANT) == before
    reason = (data / "tenants" / TENANT / "offline").read_text()
    assert "migration of its ledger failed" in reason


def test_a_newer_ledger_is_refused(servers: Servers, tmp_path: Path) -> None:
    """A ledger of a format later than this release's is neither served nor migrated, and both
    say so."""
    data = tmp_path / "data"
    ledger_path = _install_fixture(data)
    ledger = Ledger(ledger_path, tenant=TENANT, codes=dev_codes(TENANT))
    newer = ledger_format.CURRENT + 1
    ledger.env.write(lambda txn: txn.put(ledger_format.VERSION_KEY, newer.to_bytes(4, "big"),
                                         db=ledger.db["meta"]))
    ledger.close()
    before = _dump(ledger_path, TENANT)
    refused = run_cli(["tenant", "migrate", "--data", str(data), "--tenant", TENANT, "--dev"],
                      env={}, cwd=tmp_path)
    assert refused.returncode == 1
    assert f"format {newer}, newer than this release knows" in refused.stderr
    server = servers.start(data)
    answer = run_cli(["verify", "--tenant", TENANT, "hello"], env=server.env, cwd=tmp_path)
    assert "written by a later release" in answer.stderr
    server.terminate()
    assert _dump(ledger_path, TENANT) == before


def test_serve_migrate_brings_every_ledger_forward_at_start(tmp_path: Path) -> None:
    """`serve --migrate` migrates the operator store and every older tenant before serving, and
    then answers for the migrated tenant as 0.1.0 did."""
    data = tmp_path / "data"
    ledger = _install_fixture(data)
    before = _dump(ledger, TENANT)
    ready = tmp_path / "ready.json"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*pharmatrace_command(), "serve", "--dev", "--insecure", "--migrate", "--data",
             str(data), "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0",
             "--workers", "1", "--grace", "1", "--ready-file", str(ready)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, data, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            assert process.poll() is None, server.log_text()
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        server.ports = json.loads(ready.read_text())
        assert "the operator store: step to format 2" in server.log_text()
        assert "tenant acme: migrated from format 1 to 4" in server.log_text()
        assert _verify_all(server.env, tmp_path, _unit_codes(before)) == STATUSES
        server.terminate()
    finally:
        server.kill()
    _assert_carried(before, ledger, TENANT)


def test_the_step_to_format_2_is_idempotent(tmp_path: Path) -> None:
    """Running the step again on a ledger it has brought forward changes nothing."""
    ledger_path = _install_fixture(tmp_path / "data")
    ledger = Ledger(ledger_path, tenant=TENANT, codes=dev_codes(TENANT))
    try:
        assert to_2.apply(ledger, 1_700_000_000_000) is True
    finally:
        ledger.close()
    once = _dump(ledger_path, TENANT)
    ledger = Ledger(ledger_path, tenant=TENANT, codes=dev_codes(TENANT))
    try:
        assert to_2.apply(ledger, 1_700_000_000_001) is False
    finally:
        ledger.close()
    assert _dump(ledger_path, TENANT) == once
