"""Writes the format-1 fixture beside this file with the release that wrote format 1.

Run from a checkout of that release (commit 5b76b96, pharmatrace 0.1.0), with this file's
directory as the target:

    git archive 5b76b96 | tar -x -C /tmp/pt-0.1.0
    cd /tmp/pt-0.1.0 && PYTHONPATH=.:proto python DIR/make_fixture.py DIR

It serves a data directory with 0.1.0 (--dev), creates tenant ``acme`` with a product, two
batches (one using a supplier's lot), three parties and a credential; issues 30 units and two
cases; commissions them, packs 10 units into each case, ships and receives a case, dispenses
three units, returns two codes and recalls the second batch; then stops the server and keeps
a compacted copy of the tenant's ledger, key ring and identity, and of the operator store
(with one operator token).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import lmdb
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb

GTIN = "09501101530003"
TENANT = "acme"


def main(target: Path) -> None:
    work = Path(tempfile.mkdtemp())
    data = work / "data"
    ready = work / "ready.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "pharmatrace_cli", "serve", "--dev", "--insecure", "--data",
         str(data), "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0",
         "--workers", "1", "--ready-file", str(ready)])
    while not ready.exists():
        time.sleep(0.1)
    channel = grpc.insecure_channel(f"127.0.0.1:{json.loads(ready.read_text())['issue']}")
    admin = admin_pb2_grpc.AdminStub(channel)
    issuance = issuance_pb2_grpc.CodeIssuanceStub(channel)
    life = lifecycle_pb2_grpc.LifecycleStub(channel)
    try:
        populate(admin, issuance, life)
    finally:
        server.terminate()
        server.wait(30)
    # The operator store holds the platform's credentials: one, so that it exists.
    subprocess.run([sys.executable, "-m", "pharmatrace_cli", "operator", "token", "--data",
                    str(data), "--label", "fixture"], check=True, capture_output=True)
    shutil.rmtree(target / "tenant", ignore_errors=True)
    shutil.rmtree(target / "operator", ignore_errors=True)
    source = data / "tenants" / TENANT
    (target / "tenant" / "ledger").mkdir(parents=True)
    for name in ("tenant.pb", "keyring.bin"):
        shutil.copyfile(source / name, target / "tenant" / name)
    compact(source / "ledger", target / "tenant" / "ledger")
    (target / "operator" / "ledger").mkdir(parents=True)
    compact(data / "operator" / "ledger", target / "operator" / "ledger")
    shutil.rmtree(work)


def populate(admin: admin_pb2_grpc.AdminStub, issuance: issuance_pb2_grpc.CodeIssuanceStub,
             life: lifecycle_pb2_grpc.LifecycleStub) -> None:
    admin.CreateTenant(apb.CreateTenantRequest(tenant=TENANT, name="Acme Pharma"))
    admin.RegisterProduct(apb.RegisterProductRequest(tenant=TENANT, product=cpb.Product(
        gtin=GTIN, name="Amoxicillin 500 mg capsules", pack_size=24)))
    for lot, materials in (("L1", [cpb.MaterialLot(material="amoxicillin trihydrate",
                                                   supplier="Sino API", supplier_lot="SA-77")]),
                           ("L2", [])):
        admin.AddBatch(apb.AddBatchRequest(tenant=TENANT, batch=cpb.Batch(
            product=GTIN, lot=lot, expires_on="2031-06-30", materials=materials)))
    for party, kind, region in (("PLANT-1", 1, "110101"), ("DIST-1", 3, "310101"),
                                ("PHARM-1", 4, "310104")):
        admin.AddParty(apb.AddPartyRequest(tenant=TENANT, party=cpb.Party(
            party_id=party, name=party.title(), kind=kind, region=region)))  # type: ignore[arg-type]
    admin.CreateToken(apb.CreateTokenRequest(tenant=TENANT, role=apb.ROLE_PHARMACY,
                                             party_id="PHARM-1", label="pharmacy till"))

    def pool(request_id: str, lot: str, count: int, level: int) -> list[str]:
        serials: list[str] = []
        for chunk in issuance.RequestCodes(ipb.RequestCodesRequest(
                tenant=TENANT, product=GTIN, lot=lot, count=count, request_id=request_id,
                level=level)):  # type: ignore[arg-type]
            serials.extend(chunk.serials)
        return [f"(01){GTIN}(21){s}" for s in serials]

    units = pool("units-1", "L1", 30, cpb.PACKAGING_LEVEL_UNIT)
    cases = pool("cases-1", "L1", 2, cpb.PACKAGING_LEVEL_CASE)
    recalled = pool("units-2", "L2", 5, cpb.PACKAGING_LEVEL_UNIT)
    at = lpb.EventContext(party_id="PLANT-1")
    life.Commission(lpb.CommissionRequest(tenant=TENANT, context=at, codes=units[:28] + cases))
    life.Commission(lpb.CommissionRequest(tenant=TENANT, context=at, codes=recalled))
    issuance.ReturnCodes(ipb.ReturnCodesRequest(tenant=TENANT, codes=units[28:],
                                                reason=ipb.RETURN_REASON_SCRAPPED))
    for case, children in ((cases[0], units[:10]), (cases[1], units[10:20])):
        life.Aggregate(lpb.AggregateRequest(tenant=TENANT, context=at, parent=case,
                                            children=children))
    life.Ship(lpb.ShipRequest(tenant=TENANT, context=at, codes=[cases[0]],
                              destination="DIST-1"))
    life.Receive(lpb.ReceiveRequest(tenant=TENANT, context=lpb.EventContext(party_id="DIST-1"),
                                    codes=[cases[0]]))
    life.Decommission(lpb.DecommissionRequest(
        tenant=TENANT, context=lpb.EventContext(party_id="PHARM-1"), codes=units[20:23],
        target=cpb.CODE_STATUS_DISPENSED))
    life.RecallBatch(lpb.RecallBatchRequest(tenant=TENANT, context=at, product=GTIN, lot="L2",
                                            reason="out-of-specification dissolution"))


def compact(source: Path, target: Path) -> None:
    env = lmdb.open(str(source), readonly=True, lock=False, max_dbs=64)
    env.copy(str(target), compact=True)
    env.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
