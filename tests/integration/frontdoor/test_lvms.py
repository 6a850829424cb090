"""The LVMS 1.1 verification responder over real HTTP: answers and failure reasons, the
requester's token and GLN, malformed requests, and the answer trail."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.frontdoor.conftest import PLANT, Door, Pack, Shop, new_gln
from tests.ledgers import dev_codes
from tracecore.errors import Unavailable
from tracecore.ledger.answer_trail import DIRECTORY, AnswerTrail
from tracecore.ledger.tenants import TENANTS

DISTRIBUTOR = 3
LINE = 2


class Partner:
    """A wholesaler of the pack's tenant: its party, GLN and bearer token."""

    def __init__(self, shop: Shop, pack: Pack, role: int = DISTRIBUTOR) -> None:
        self.party_id = f"WHOLESALER-{uuid.uuid4().hex[:6]}"
        self.gln = shop.party(pack.tenant, self.party_id, "US Wholesaler Inc",
                              cpb.PARTY_KIND_DISTRIBUTOR)
        self.token = shop.token(pack.tenant, role, self.party_id)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def ask(http: httpx.Client, pack: Pack, partner: Partner | None, *, i: int = 0,
        serial: str | None = None, lot: str | None = None, exp: str | None = None,
        headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    query = {"exp": exp or pack.expiry, "corrUUID": str(uuid.uuid4()),
             "context": "dscsaSaleableReturn", "reqGLN": partner.gln if partner else new_gln(),
             **params}
    return http.get(f"/verify/gtin/{pack.gtin}/lot/{lot or pack.lot}/ser/"
                    f"{serial or pack.serial(i)}", params=query,
                    headers=headers if headers is not None else
                    (partner.auth if partner else {}))


def test_a_genuine_pack_is_verified_with_the_lvms_fields(door: Door, shop: Shop) -> None:
    """A matching GTIN, serial, lot and expiry: verified true, the correlation id echoed, the
    responder's GLN (its plant's) and a UTC timestamp."""
    pack = shop.pack()
    plant = door.admin.GetParty(apb.GetPartyRequest(tenant=pack.tenant, party_id=PLANT)).party
    partner = Partner(shop, pack)
    corr = str(uuid.uuid4())
    with door.client() as http:
        answer = ask(http, pack, partner, corrUUID=corr)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["corrUUID"] == corr
    assert body["responderGLN"] == plant.gln
    assert body["data"] == {"verified": True}
    assert body["verificationTimestamp"].endswith("Z")


def test_failure_reasons_from_the_code_list(door: Door, shop: Shop) -> None:
    """An unknown serial, a wrong lot, a wrong expiry and both: the matching
    No_match_GTIN_Serial… reason, verified false."""
    pack = shop.pack()
    partner = Partner(shop, pack)
    other_expiry = "300101"
    with door.client() as http:
        reasons = {
            "serial": ask(http, pack, partner, serial="NOSUCHSERIAL123"),
            "lot": ask(http, pack, partner, lot="OTHERLOT"),
            "expiry": ask(http, pack, partner, exp=other_expiry),
            "both": ask(http, pack, partner, lot="OTHERLOT", exp=other_expiry),
            "forged": ask(http, pack, partner, serial=shop.forged(pack).split("(21)")[1]),
        }
    expected = {"serial": "No_match_GTIN_Serial", "lot": "No_match_GTIN_Serial_Lot",
                "expiry": "No_match_GTIN_Serial_Expiry",
                "both": "No_match_GTIN_Serial_Lot_Expiry", "forged": "No_match_GTIN_Serial"}
    for name, answer in reasons.items():
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["verified"] is False, name
        assert data["verificationFailureReason"] == expected[name], name


def test_a_recalled_pack_is_verified_with_additional_info(door: Door, shop: Shop) -> None:
    """A matching pack of a recalled batch: verified true, additionalInfo Recalled."""
    pack = shop.pack()
    shop.recall(pack)
    partner = Partner(shop, pack)
    with door.client() as http:
        answer = ask(http, pack, partner)
    assert answer.json()["data"] == {"verified": True, "additionalInfo": "Recalled"}


def test_a_dispensed_pack_coming_back_is_suspect(door: Door, shop: Shop) -> None:
    """A saleable return of a pack recorded as dispensed: verified true, additionalInfo
    Suspect."""
    pack = shop.pack()
    shop.dispense(pack)
    partner = Partner(shop, pack)
    with door.client() as http:
        answer = ask(http, pack, partner)
    assert answer.json()["data"] == {"verified": True, "additionalInfo": "Suspect"}


def test_no_or_a_bad_token_is_401(door: Door, shop: Shop) -> None:
    """No Authorization header, another scheme, a malformed token and an unknown one are 401
    with a Bearer challenge."""
    pack = shop.pack()
    partner = Partner(shop, pack)
    forged_token = partner.token[:-4] + "AAAA"
    with door.client() as http:
        for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"},
                        {"Authorization": "Bearer not-a-token"},
                        {"Authorization": f"Bearer {forged_token}"}):
            answer = ask(http, pack, partner, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/checkConnectivity").status_code == 401
        assert http.get("/checkConnectivity", headers=partner.auth).status_code == 200


def test_a_token_of_another_party_or_role_is_403(door: Door, shop: Shop) -> None:
    """A requester sending another party's GLN, and a packaging-line token, are 403."""
    pack = shop.pack()
    partner = Partner(shop, pack)
    line = Partner(shop, pack, role=LINE)
    with door.client() as http:
        other_gln = ask(http, pack, partner, reqGLN=new_gln())
        wrong_role = ask(http, pack, line)
    assert other_gln.status_code == 403
    assert "GLN" in other_gln.json()["detail"]
    assert wrong_role.status_code == 403


@pytest.mark.parametrize(("field", "value"), [
    ("corrUUID", "not-a-uuid"), ("exp", "2812"), ("exp", "281340"), ("reqGLN", "1234567890123"),
    ("context", ""), ("gtin", "09501101530004"), ("ser", "bad serial!")])
def test_malformed_requests_are_400_naming_the_parameter(door: Door, shop: Shop, field: str,
                                                         value: str) -> None:
    """A malformed correlation id, expiry, GLN, context, GTIN or serial is 400, naming it."""
    pack = shop.pack()
    partner = Partner(shop, pack)
    with door.client() as http:
        if field == "gtin":
            answer = http.get(f"/verify/gtin/{value}/lot/{pack.lot}/ser/{pack.serial()}",
                              params={"exp": pack.expiry, "corrUUID": str(uuid.uuid4()),
                                      "context": "dscsaSaleableReturn", "reqGLN": partner.gln},
                              headers=partner.auth)
        elif field == "ser":
            answer = ask(http, pack, partner, serial=value)
        else:
            answer = ask(http, pack, partner, **{field: value})
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"]


def test_every_answer_is_in_the_answer_trail(door: Door, shop: Shop) -> None:
    """Each answer and each refusal of a known requester leaves a chained record with the
    credential, the correlation id and the outcome; the trail's file does not hold the serial
    asked about (its records are sealed)."""
    pack = shop.pack()
    partner = Partner(shop, pack)
    ok_id, refused_id = str(uuid.uuid4()), str(uuid.uuid4())
    with door.client() as http:
        assert ask(http, pack, partner, corrUUID=ok_id).status_code == 200
        assert ask(http, pack, partner, corrUUID=refused_id,
                   reqGLN=new_gln()).status_code == 403
    credential = partner.token.split(".")[2]
    path = door.codegen.data.get(pack.tenant).path / DIRECTORY
    deadline = time.monotonic() + 10
    records = []
    while time.monotonic() < deadline:
        if path.exists():
            trail = AnswerTrail(path, tenant=pack.tenant, codes=dev_codes(pack.tenant))
            try:
                records = trail.records()
                checked, broken = trail.verify()
            finally:
                trail.close()
            if len(records) >= 2:
                break
        time.sleep(0.1)
    assert len(records) == 2 and broken is None and checked == 2
    # The record names the serial; the file holds it only sealed.
    assert pack.serial() in records[0].summary
    assert pack.serial().encode() not in (path / "data.mdb").read_bytes()
    ok, refused = records
    assert ok.credential_id == credential and refused.credential_id == credential
    assert f"corrUUID={ok_id}" in ok.summary and "verified=true" in ok.summary
    assert ok.status == "OK"
    assert f"corrUUID={refused_id}" in refused.summary
    assert refused.status == "PERMISSION_DENIED"


def test_every_answer_given_while_the_tenant_goes_offline_is_in_the_trail(
        door: Door, shop: Shop) -> None:
    """Partners keep asking while the tenant is taken offline: every answer given (200) is in
    the answer trail once the tenant's files are closed, and every other request is refused
    (503, the tenant offline), none given unrecorded."""
    pack = shop.pack()
    partner = Partner(shop, pack)
    given: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with door.client() as http:
            while not stop.is_set():
                corr = str(uuid.uuid4())
                status = ask(http, pack, partner, corrUUID=corr).status_code
                statuses.append(status)
                if status == 200:
                    given.append(corr)

    askers = [threading.Thread(target=keep_asking) for _ in range(4)]
    for asker in askers:
        asker.start()
    try:
        while len(given) < 20:
            time.sleep(0.01)
        released = door.admin.SetTenantOnline(apb.SetTenantOnlineRequest(
            tenant=pack.tenant, online=False, reason="answer trail drill"), timeout=60).released
        time.sleep(0.3)  # requests still under way meet the tenant offline
    finally:
        stop.set()
        for asker in askers:
            asker.join()
    assert released
    assert set(statuses) <= {200, 503} and 503 in statuses
    trail = AnswerTrail(door.codegen.data.root / TENANTS / pack.tenant / DIRECTORY,
                        tenant=pack.tenant, codes=dev_codes(pack.tenant))
    try:
        recorded = {record.summary.split()[0].removeprefix("corrUUID=")
                    for record in trail.records()}
        assert trail.verify()[1] is None
    finally:
        trail.close()
    assert set(given) <= recorded, f"{len(set(given) - recorded)} answers given unrecorded"
    door.admin.SetTenantOnline(apb.SetTenantOnlineRequest(tenant=pack.tenant, online=True),
                               timeout=RPC_TIMEOUT_S)


def test_an_answer_record_offered_to_a_closed_trail_is_refused(tmp_path: Path) -> None:
    """A record that reaches a tenant's answer trail after it was closed (the tenant went
    offline in the instant the answer was made) is refused, so that the answer is not given,
    rather than kept in a buffer no flush will write; what was buffered before is written by
    the close."""
    path = tmp_path / DIRECTORY
    trail = AnswerTrail(path, tenant="t", codes=dev_codes("t"))
    before = _record("corrUUID=before")
    trail.buffer(before)
    trail.close()
    with pytest.raises(Unavailable):
        trail.buffer(_record("corrUUID=after"))
    assert trail.flush() == 0
    again = AnswerTrail(path, tenant="t", codes=dev_codes("t"))
    try:
        assert [r.summary for r in again.records()] == ["corrUUID=before"]
    finally:
        again.close()


def _record(summary: str) -> lpb.AuditRecord:
    return lpb.AuditRecord(at_ms=1_000, peer="partner", method="LVMS GET /verify",
                           summary=summary, status="OK")
