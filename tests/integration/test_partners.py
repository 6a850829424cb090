"""Exchange with partners over real servers: codes minted elsewhere (EPCIS import, `codes
register`), locations a partner names recorded as external parties then merged, and a receipt
checked against the bill it was shipped under."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product, Servers

#: Another company's GTIN (GS1 company prefix 0614141), and its SGTIN EPC URIs.
FOREIGN_GTIN = "10614141073464"
PARTNER_SGLN = "urn:epc:id:sgln:0614141.07346.0"
PARTNER_GLN = "0614141073467"
PHARMATRACE = Path(sys.executable).with_name("pharmatrace")


@dataclass(frozen=True)
class _Site:
    api: Api
    product: Gs1Product
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    trace: trace_pb2_grpc.TraceStub
    servers: Servers

    @property
    def tenant(self) -> str:
        return self.product.tenant

    def verify(self, code: str) -> vpb.VerifyResponse:
        return self.api.verification.Verify(vpb.VerifyRequest(tenant=self.tenant, code=code),
                                            timeout=RPC_TIMEOUT_S)

    def import_epcis(self, events: list[dict[str, Any]]) -> lpb.ImportEpcisResponse:
        document = {
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
            "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2025-03-05T09:45:00Z", "epcisBody": {"eventList": events}}
        return self.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
            tenant=self.tenant, document=json.dumps(document)), timeout=RPC_TIMEOUT_S)

    def parties(self) -> dict[str, cpb.Party]:
        listed = self.api.admin.ListParties(apb.ListPartiesRequest(tenant=self.tenant),
                                            timeout=RPC_TIMEOUT_S)
        return {p.party_id: p for p in listed.parties}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PHARMATRACE_ISSUE_ADDR": self.servers.issue_address,
               "PHARMATRACE_VERIFY_ADDR": self.servers.verify_address,
               "PHARMATRACE_CONFIG": "/nonexistent"}
        return subprocess.run([str(PHARMATRACE), *args, "--tenant", self.tenant], env=env,
                              capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def site(api: Api, gs1: Gs1Product, issue_channel: grpc.Channel, verify_channel: grpc.Channel,
         servers: Servers) -> Iterator[_Site]:
    for party_id, kind in (("PLANT", cpb.PARTY_KIND_PLANT), ("WH", cpb.PARTY_KIND_DISTRIBUTOR)):
        api.admin.AddParty(apb.AddPartyRequest(tenant=gs1.tenant, party=cpb.Party(
            party_id=party_id, name=party_id, kind=kind, region="310101")),
            timeout=RPC_TIMEOUT_S)
    yield _Site(api, gs1, lifecycle_pb2_grpc.LifecycleStub(issue_channel),
                trace_pb2_grpc.TraceStub(verify_channel), servers)


def _sgtin(serial: str) -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{serial}"


def _receiving(serials: list[str], place: str, event_id: str) -> dict[str, Any]:
    """A partner's receipt of packs at ``place``."""
    return {"type": "ObjectEvent", "eventID": event_id,
            "eventTime": "2025-03-05T09:30:00.250+01:00", "eventTimeZoneOffset": "+01:00",
            "epcList": [_sgtin(s) for s in serials], "action": "OBSERVE",
            "bizStep": "receiving", "disposition": "in_progress",
            "readPoint": {"id": place}, "bizLocation": {"id": place},
            "bizTransactionList": [
                {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141000005:DA-7"}]}


def test_a_foreign_gs1_code_imported_through_epcis_verifies_as_known_foreign(site: _Site) -> None:
    """Another company's pack received through an EPCIS document is recorded, not refused, and
    verifies as KNOWN_FOREIGN (known here, not signed by us), unlike a code never seen."""
    answer = site.import_epcis([_receiving(["2017"], PARTNER_SGLN, "urn:uuid:1")])
    assert answer.recorded == 1 and not answer.failures, answer
    known = site.verify(f"(01){FOREIGN_GTIN}(21)2017")
    assert known.verdict == vpb.VERDICT_KNOWN_FOREIGN
    assert known.status == cpb.CODE_STATUS_ACTIVE
    assert "not signed by us" in known.reason
    # The SGTIN EPC URIs name the GS1 company prefix the codes were minted under.
    assert known.minted_by == "0614141" and "minted by 0614141" in known.reason
    assert known.product.gtin == FOREIGN_GTIN
    assert site.verify(f"(01){FOREIGN_GTIN}(21)2018").verdict == vpb.VERDICT_BAD_SIGNATURE
    events = site.trace.ListEvents(tpb.ListEventsRequest(
        tenant=site.tenant, document=cpb.BusinessDocument(type="desadv", id="DA-7")),
        timeout=RPC_TIMEOUT_S).events
    assert [e.kind for e in events] == [lpb.EVENT_KIND_RECEIVE]
    assert events[0].documents[0].id == "DA-7"


def test_an_epcis_event_says_who_minted_its_codes_and_verification_answers_it(
        site: _Site) -> None:
    """Codes first seen in a partner's event named by Digital Link carry the minter the event
    gives in pharmatrace:mintedBy; codes of another event give none (its Digital Links do not
    say where the company prefix ends) and verify as known foreign naming no minter."""
    links = [f"https://id.gs1.org/01/{FOREIGN_GTIN}/21/{s}" for s in ("DL-1", "DL-2")]
    said = {**_receiving([], PARTNER_SGLN, "urn:uuid:dl-1"), "epcList": links[:1],
            "pharmatrace:mintedBy": "Example Pharma GmbH"}
    silent = {**_receiving([], PARTNER_SGLN, "urn:uuid:dl-2"), "epcList": links[1:]}
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
                     {"pharmatrace": "urn:pharmatrace:epcis:"}],
        "type": "EPCISDocument", "schemaVersion": "2.0",
        "creationDate": "2025-03-05T09:45:00Z", "epcisBody": {"eventList": [said, silent]}}
    answer = site.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
        tenant=site.tenant, document=json.dumps(document)), timeout=RPC_TIMEOUT_S)
    assert answer.recorded == 2 and not answer.failures, answer
    named = site.verify(f"(01){FOREIGN_GTIN}(21)DL-1")
    assert named.verdict == vpb.VERDICT_KNOWN_FOREIGN
    assert named.minted_by == "Example Pharma GmbH"
    assert named.reason.endswith("minted by Example Pharma GmbH")
    unnamed = site.verify(f"(01){FOREIGN_GTIN}(21)DL-2")
    assert unnamed.verdict == vpb.VERDICT_KNOWN_FOREIGN and unnamed.minted_by == ""
    batch = site.api.verify_batch(site.tenant, [f"(01){FOREIGN_GTIN}(21)DL-{n}"
                                                for n in (1, 2)])
    assert (list(batch.minted_rows), list(batch.minted_by)) == ([0], ["Example Pharma GmbH"])


def test_a_foreign_pack_then_goes_through_the_lifecycle_with_custody(site: _Site) -> None:
    """A foreign pack received at a registered party is held by it: shipped on by it, refused to
    anyone else, received at the destination."""
    site.api.admin.AddParty(apb.AddPartyRequest(tenant=site.tenant, party=cpb.Party(
        party_id="DC", name="DC", gln=PARTNER_GLN, kind=cpb.PARTY_KIND_DISTRIBUTOR,
        region="310101")), timeout=RPC_TIMEOUT_S)
    site.import_epcis([_receiving(["3001"], PARTNER_SGLN, "urn:uuid:2")])
    code = f"(01){FOREIGN_GTIN}(21)3001"
    wrong = site.lifecycle.Ship(lpb.ShipRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="PLANT"), codes=[code],
        destination="WH"), timeout=RPC_TIMEOUT_S)
    assert not wrong.applied and "held by DC" in wrong.failures[0].reason
    shipped = site.lifecycle.Ship(lpb.ShipRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="DC"), codes=[code],
        destination="WH"), timeout=RPC_TIMEOUT_S)
    assert shipped.applied, shipped
    received = site.lifecycle.Receive(lpb.ReceiveRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="WH"), codes=[code]),
        timeout=RPC_TIMEOUT_S)
    assert received.applied, received
    assert site.verify(code).verdict == vpb.VERDICT_KNOWN_FOREIGN


def test_an_unregistered_sgln_becomes_an_external_party_then_is_merged(site: _Site) -> None:
    """A location a partner names that nobody registered is recorded as an external party on
    first sight; merged into a registered party, its packs move there and later events that
    name it resolve to that party."""
    answer = site.import_epcis([_receiving(["4001", "4002"], PARTNER_SGLN, "urn:uuid:3")])
    assert answer.recorded == 1 and not answer.failures, answer
    external = site.parties()[f"gln-{PARTNER_GLN}"]
    assert external.external and external.gln == PARTNER_GLN
    assert external.identifier == PARTNER_SGLN and external.told_by
    merged = site.cli("party", "merge", f"gln-{PARTNER_GLN}", "--into", "WH")
    assert merged.returncode == 0, merged.stderr
    assert "2 packs moved" in merged.stdout
    assert site.parties()[f"gln-{PARTNER_GLN}"].merged_into == "WH"
    site.import_epcis([_receiving(["4003"], PARTNER_SGLN, "urn:uuid:4")])
    history = site.trace.TraceCode(tpb.TraceCodeRequest(
        tenant=site.tenant, code=f"(01){FOREIGN_GTIN}(21)4003"), timeout=RPC_TIMEOUT_S)
    assert history.history[-1].party_id == "WH"
    shipped = site.lifecycle.Ship(lpb.ShipRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="WH"),
        codes=[f"(01){FOREIGN_GTIN}(21)4001"], destination="PLANT"), timeout=RPC_TIMEOUT_S)
    assert shipped.applied, shipped


def test_an_external_party_can_be_confirmed(site: _Site) -> None:
    """An admin confirms an external party: it is an ordinary party from then on."""
    site.import_epcis([_receiving(["5001"], "urn:epc:id:sgln:0614141.00777.0", "urn:uuid:5")])
    party_id = next(p for p, v in site.parties().items() if v.external)
    confirmed = site.cli("party", "confirm", party_id)
    assert confirmed.returncode == 0, confirmed.stderr
    assert not site.parties()[party_id].external


def test_codes_register_records_100000_codes_from_a_file(site: _Site, tmp_path: Path) -> None:
    """`codes register --file` records 100,000 codes of another company with who minted them and
    who told us; each then verifies as KNOWN_FOREIGN naming the minter, and a second run finds
    them all known."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    serials = {"".join(secrets.choice(alphabet) for _ in range(12)) for _ in range(100_000)}
    while len(serials) < 100_000:
        serials.add("".join(secrets.choice(alphabet) for _ in range(12)))
    codes = [f"(01){FOREIGN_GTIN}(21){s}" for s in sorted(serials)]
    path = tmp_path / "codes.txt"
    path.write_text("\n".join(codes) + "\n", encoding="utf-8")
    done = site.cli("codes", "register", "--file", str(path), "--minted-by", "0614141",
                    "--source", "wholesaler-1")
    assert done.returncode == 0, done.stderr
    assert "100,000 registered, 0 already known, 0 refused" in done.stderr
    answer = site.verify(codes[12_345])
    assert answer.verdict == vpb.VERDICT_KNOWN_FOREIGN and answer.minted_by == "0614141"
    own = site.api.codes(site.tenant, site.product.gtin, 1, lot=site.product.lot)
    batch = site.api.verify_batch(site.tenant, [own[0], codes[7], codes[8]])
    assert list(batch.verdicts)[1:] == [vpb.VERDICT_KNOWN_FOREIGN] * 2
    assert (list(batch.minted_rows), list(batch.minted_by)) == ([1, 2], ["0614141"] * 2)
    again = site.cli("codes", "register", codes[0], codes[1])
    assert "0 registered, 2 already known" in again.stderr


def test_codes_register_refuses_codes_signed_here(site: _Site) -> None:
    """A code this tenant minted cannot be registered as minted elsewhere."""
    own = site.api.codes(site.tenant, site.product.gtin, 1, lot=site.product.lot)
    done = site.cli("codes", "register", own[0])
    assert done.returncode == 1
    assert "signed by this tenant" in done.stderr


def test_a_receipt_is_checked_against_the_shipped_bill(site: _Site) -> None:
    """Ten packs shipped under a despatch advice, eight of them received under it with one pack
    of another shipment: the check lists the two missing and the one extra."""
    codes = site.api.codes(site.tenant, site.product.gtin, 11, lot=site.product.lot)
    site.lifecycle.Commission(lpb.CommissionRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="PLANT"), codes=codes),
        timeout=RPC_TIMEOUT_S)
    bill = cpb.BusinessDocument(type="desadv", id="DA-2026-0042", counterparty="WH")
    for batch, document in ((codes[:10], bill), (codes[10:], cpb.BusinessDocument(
            type="crkd", id="出库-0001"))):
        shipped = site.lifecycle.Ship(lpb.ShipRequest(
            tenant=site.tenant, context=lpb.EventContext(party_id="PLANT"), codes=batch,
            destination="WH", documents=[document]), timeout=RPC_TIMEOUT_S)
        assert shipped.applied, shipped
    received = site.lifecycle.Receive(lpb.ReceiveRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="WH"),
        codes=codes[:8] + codes[10:], documents=[bill]), timeout=RPC_TIMEOUT_S)
    assert received.applied, received
    check = site.trace.CheckReceipt(tpb.CheckReceiptRequest(
        tenant=site.tenant, document=cpb.BusinessDocument(type="desadv", id="DA-2026-0042")),
        timeout=RPC_TIMEOUT_S)
    assert (check.shipped, check.received) == (10, 9)
    assert sorted(check.missing) == sorted(codes[8:10])
    assert list(check.extra) == [codes[10]]
    listed = site.trace.ListEvents(tpb.ListEventsRequest(tenant=site.tenant, document=bill),
                                   timeout=RPC_TIMEOUT_S).events
    assert [e.kind for e in listed] == [lpb.EVENT_KIND_SHIP, lpb.EVENT_KIND_RECEIVE]
    cli = site.cli("receipt", "check", "--bill", "DA-2026-0042", "--json")
    assert cli.returncode == 1
    rows = [json.loads(line) for line in cli.stdout.splitlines()]
    assert sorted(r["state"] for r in rows) == ["extra", "missing", "missing"]
    assert "2 missing, 1 extra" in cli.stderr
    unknown = site.cli("receipt", "check", "--bill", "DA-2026-9999")
    assert unknown.returncode == 1
    assert "DA-2026-9999: nothing was shipped or received under it" in unknown.stderr


def test_doctor_finds_a_ledger_with_codes_minted_elsewhere_healthy(site: _Site) -> None:
    """Codes registered and received from a partner have no pool and no key of ours: `doctor`
    finds the counters, pools and keys agreeing with the codes all the same."""
    site.import_epcis([_receiving(["6001", "6002"], PARTNER_SGLN, "urn:uuid:6")])
    assert site.cli("codes", "register", f"(01){FOREIGN_GTIN}(21)6003").returncode == 0
    found = subprocess.run(
        [str(PHARMATRACE), "doctor", "--data", str(site.servers.data), "--tenant", site.tenant,
         "--dev"], capture_output=True, text=True, timeout=300, check=False)
    assert found.returncode == 0, found.stdout
    for check in ("counters: ok", "pools: ok", "key ring: ok", "signing keys: ok"):
        assert check in found.stdout


def test_nmpa_codes_of_another_issuer_are_registered_unused_then_commissioned_by_the_line(
        site: _Site, api: Api) -> None:
    """20-digit codes a code-issuing body gave out are registered unused, commissioned by the
    line into a batch like our own, and verify as KNOWN_FOREIGN with their batch."""
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=site.tenant, product=cpb.Product(
        nmpa_id="8612345", name="阿莫西林胶囊")), timeout=RPC_TIMEOUT_S)
    api.admin.AddBatch(apb.AddBatchRequest(tenant=site.tenant, batch=cpb.Batch(
        product="8612345", lot="B7", manufactured_on="2025-01-01", expires_on="2030-01-01")),
        timeout=RPC_TIMEOUT_S)
    codes = [f"8612345{secrets.randbelow(10**13):013d}" for _ in range(3)]
    done = site.cli("codes", "register", *codes, "--unused", "--minted-by", "发码机构-01")
    assert done.returncode == 0 and "3 registered" in done.stderr, done.stderr
    assert site.verify(codes[0]).status == cpb.CODE_STATUS_ISSUED
    commissioned = site.lifecycle.Commission(lpb.CommissionRequest(
        tenant=site.tenant, context=lpb.EventContext(party_id="PLANT"), codes=codes, lot="B7"),
        timeout=RPC_TIMEOUT_S)
    assert commissioned.applied, commissioned
    answer = site.verify(codes[1])
    assert answer.verdict == vpb.VERDICT_KNOWN_FOREIGN and answer.minted_by == "发码机构-01"
    assert answer.status == cpb.CODE_STATUS_ACTIVE and answer.batch.lot == "B7"
