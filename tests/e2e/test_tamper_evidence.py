"""Tamper evidence against someone who can write the files: rehashing a chain is not enough."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from tests.e2e.conftest import Servers, run_cli
from tracecore.ledger.chain import audit_trail
from tracecore.ledger.store import Ledger

GTIN = "09501101530003"
LOT = "LOT-SEAL"


def _rewrite_first_audit_record_and_rehash(ledger_dir: Path, tenant: str) -> None:
    """The attack: change who did the first audited call, rehash every record after it and
    move the head, as anyone with the file and this code can."""
    ledger = Ledger(ledger_dir, tenant=tenant)
    chain = audit_trail(ledger.db)

    def rewrite(txn):  # type: ignore[no-untyped-def]
        last, _ = chain.head(txn)
        prev = bytes(32)
        for seq in range(1, last + 1):
            record = chain.get(txn, seq)
            if seq == 1:
                record.credential_id = "someone-else"
            record.prev_hash = prev
            record.hash = b""
            record.hash = chain.hash_of(record)
            txn.put(seq.to_bytes(8, "big"), record.SerializeToString(deterministic=True),
                    db=ledger.db["audit"])
            prev = record.hash
        txn.put(b"audit:head", last.to_bytes(8, "big") + prev, db=ledger.db["meta"])

    try:
        ledger.env.write(rewrite)
    finally:
        ledger.close()


def test_a_rehashed_audit_trail_passes_the_chain_walk_but_not_doctors_seal_check(
        servers: Servers, tmp_path: Path) -> None:
    """The running server seals the chain heads (exported by `audit heads`); an audit record
    rewritten with the chain rehashed still walks, but `doctor` reports the seal contradicted
    and exits 1."""
    server = servers.start()
    tenant = f"seal-{uuid.uuid4().hex[:8]}"
    for args in (["tenant", "create", tenant, "--name", "Seal Pharma"],
                 ["product", "add", "--tenant", tenant, "--gtin", GTIN, "--name", "Pack"],
                 ["batch", "add", "--tenant", tenant, "--product", GTIN, "--lot", LOT,
                  "--expires", "2031-01-01"]):
        assert run_cli(args, env=server.env, cwd=tmp_path).returncode == 0
    data = str(server.data)
    deadline = time.monotonic() + 60
    heads = run_cli(["audit", "heads", "--data", data, "--tenant", tenant], env=server.env,
                    cwd=tmp_path)
    while (heads.returncode != 0 or json.loads(heads.stdout)["audit_seq"] < 3) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
        heads = run_cli(["audit", "heads", "--data", data, "--tenant", tenant],
                        env=server.env, cwd=tmp_path)
    assert heads.returncode == 0, heads.stderr
    exported = json.loads(heads.stdout)
    assert exported["tenant"] == tenant and len(exported["mac"]) == 64
    assert server.terminate() == 0

    doctor = ["doctor", "--data", data, "--tenant", tenant, "--dev"]
    healthy = run_cli(doctor, env=server.env, cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "chain heads sealed" in healthy.stdout

    _rewrite_first_audit_record_and_rehash(server.data / "tenants" / tenant / "ledger", tenant)
    walked = run_cli(["audit", "verify", "--data", data, "--tenant", tenant], env=server.env,
                     cwd=tmp_path)
    assert walked.returncode == 0  # the hash chain alone cannot tell
    caught = run_cli(doctor, env=server.env, cwd=tmp_path)
    assert caught.returncode == 1
    assert "differs from its sealed head" in caught.stdout + caught.stderr
