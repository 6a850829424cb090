"""Tamper evidence against someone who can write the files: rehashing a chain is not enough,
and a status edited in place contradicts the journal."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from tests.e2e.conftest import Servers, run_cli
from tests.ledgers import dev_codes
from tracecore.codes import parse
from tracecore.ledger.chain import audit_trail
from tracecore.ledger.counters import Tally
from tracecore.ledger.store import Ledger
from tracecore.status import Status

GTIN = "09501101530003"
LOT = "LOT-SEAL"


def _rewrite_first_audit_record_and_rehash(ledger_dir: Path, tenant: str) -> None:
    """The attack: change who did the first audited call, rehash every record after it and
    move the head, as anyone with the file, this code and the key the records are sealed under
    can."""
    ledger = Ledger(ledger_dir, tenant=tenant, codes=dev_codes(tenant))
    chain = audit_trail(ledger.db, ledger.codes)

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
            txn.put(seq.to_bytes(8, "big"),
                    ledger.codes.seal(record.SerializeToString(deterministic=True)),
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
    walked = run_cli(["audit", "verify", "--data", data, "--tenant", tenant, "--dev"],
                     env=server.env, cwd=tmp_path)
    assert walked.returncode == 0  # the hash chain alone cannot tell
    caught = run_cli(doctor, env=server.env, cwd=tmp_path)
    assert caught.returncode == 1
    assert "differs from its sealed head" in caught.stdout + caught.stderr


def _dispense_in_the_file(ledger_dir: Path, tenant: str, code: str) -> None:
    """The attack: a pack's record set from ACTIVE to DISPENSED straight in data.mdb, with the
    report counters moved to match, as anyone with write access to the file can."""
    ledger = Ledger(ledger_dir, tenant=tenant, codes=dev_codes(tenant))
    key = parse(code).code.key()

    def edit(txn):  # type: ignore[no-untyped-def]
        before = ledger.code_record(txn, key)
        assert before is not None and before.status is Status.ACTIVE
        after = before.evolve(status=Status.DISPENSED)
        txn.put(ledger.codes.stored(key), after.pack(), db=ledger.db["codes"])
        tally = Tally()
        tally.move(before, after)
        tally.write(txn, ledger.db["counters"])

    try:
        ledger.env.write(edit)
    finally:
        ledger.close()


def test_doctor_recomputes_every_status_from_the_events_and_names_an_edited_one(
        servers: Servers, tmp_path: Path) -> None:
    """A pack's status edited in the LMDB file (counters adjusted too) is reported by `doctor`
    with what its events say, and doctor exits 1; untouched, doctor finds every status as its
    events say, containers and refused events included."""
    server = servers.start()
    tenant = f"recount-{uuid.uuid4().hex[:8]}"
    channel = grpc.insecure_channel(server.issue_addr)
    admin = admin_pb2_grpc.AdminStub(channel)
    admin.CreateTenant(apb.CreateTenantRequest(tenant=tenant, name="Recount"), timeout=30)
    admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
        gtin=GTIN, name="Pack")), timeout=30)
    admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
        product=GTIN, lot=LOT, expires_on="2031-01-01")), timeout=30)
    for party, kind in (("PLANT", cpb.PARTY_KIND_PLANT), ("PHARM", cpb.PARTY_KIND_PHARMACY)):
        admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
            party_id=party, name=party, kind=kind)), timeout=30)
    chunks = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(ipb.RequestCodesRequest(
        tenant=tenant, product=GTIN, lot=LOT, count=8, request_id="pool-1"), timeout=30)
    codes = [f"(01){c.product}(21){s}" for c in chunks for s in c.serials]
    units, case = codes[:6], codes[6]
    life = lifecycle_pb2_grpc.LifecycleStub(channel)
    plant = lpb.EventContext(party_id="PLANT")
    life.Commission(lpb.CommissionRequest(tenant=tenant, codes=units, context=plant), timeout=30)
    life.Commission(lpb.CommissionRequest(tenant=tenant, codes=[case], context=plant,
                                          level=cpb.PACKAGING_LEVEL_CASE), timeout=30)
    life.Aggregate(lpb.AggregateRequest(tenant=tenant, parent=case, children=units[:2],
                                        context=plant, partial=True), timeout=30)
    life.Decommission(lpb.DecommissionRequest(
        tenant=tenant, codes=[case], target=cpb.CODE_STATUS_EXPORTED, context=plant), timeout=30)
    refused = life.Decommission(lpb.DecommissionRequest(
        tenant=tenant, codes=[units[2], units[0]], target=cpb.CODE_STATUS_DISPENSED,
        context=lpb.EventContext(party_id="PLANT", best_effort=True)), timeout=30)
    assert refused.changed == 1 and len(refused.failures) == 1
    life.Destroy(lpb.DestroyRequest(tenant=tenant, codes=[units[3]], context=plant), timeout=30)
    issuance_pb2_grpc.CodeIssuanceStub(channel).ReturnCodes(ipb.ReturnCodesRequest(
        tenant=tenant, codes=[codes[7]], reason=ipb.RETURN_REASON_UNUSED), timeout=30)
    channel.close()
    assert server.terminate() == 0

    data = str(server.data)
    doctor = ["doctor", "--data", data, "--tenant", tenant, "--dev"]
    healthy = run_cli(doctor, env=server.env, cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "every code's status is what its events say" in healthy.stdout

    _dispense_in_the_file(server.data / "tenants" / tenant / "ledger", tenant, units[4])
    caught = run_cli(doctor, env=server.env, cwd=tmp_path)
    assert caught.returncode == 1
    output = caught.stdout + caught.stderr
    assert "1 codes whose stored status is not what their events say" in output, output
    assert f"{units[4]} is stored DISPENSED, its events say ACTIVE" in output
    assert "counters" in output and "counters: PROBLEM" not in output
