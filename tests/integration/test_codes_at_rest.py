"""A stolen copy of a tenant's live ledger names no valid code: after a real server issued,
commissioned, packed, shipped, dispensed and imported codes and raised an alert,
``ledger/data.mdb`` and ``alerts/data.mdb`` hold none of their serials, element strings, EPC
URIs or printed texts, while every one still verifies."""

from __future__ import annotations

import json
import time

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import (
    LOT,
    RPC_TIMEOUT_S,
    Api,
    Gs1Product,
    NmpaProduct,
    Servers,
)
from tracecore.codes import Form, parse, render

#: Another company's GTIN (GS1 company prefix 0614141), received through EPCIS.
FOREIGN_GTIN = "10614141073464"
PARTNER_SGLN = "urn:epc:id:sgln:0614141.07346.0"
FOREIGN_SERIALS = ["AT-REST-7731", "AT-REST-7732"]


def written_forms(code: str, company_prefix_length: int) -> list[bytes]:
    """What a counterfeiter could print from: the serial, the canonical text, the element string
    and, for GS1, the EPC URI and Digital Link."""
    scan = parse(code)
    forms = [scan.code.serial, scan.code.text()]
    if scan.code.product.isdigit() and len(scan.code.product) == 14:
        forms += [render(scan, Form.ELEMENT).removeprefix("]d2"),
                  render(scan, Form.EPC_URI, company_prefix_length=company_prefix_length),
                  render(scan, Form.DIGITAL_LINK)]
    return [form.encode() for form in forms]


def test_the_live_ledger_holds_no_issued_code_in_clear(
        api: Api, gs1: Gs1Product, nmpa: NmpaProduct, servers: Servers,
        issue_channel: grpc.Channel, verify_channel: grpc.Channel) -> None:
    """Pools issued, packs commissioned, packed into a case, shipped and codes of a partner
    imported: no serial or written form of any of them is in the tenant's ``data.mdb``, and
    each still verifies as it should."""
    tenant = gs1.tenant
    life = lifecycle_pb2_grpc.LifecycleStub(issue_channel)
    for party_id, kind in (("PLANT", cpb.PARTY_KIND_PLANT), ("WH", cpb.PARTY_KIND_DISTRIBUTOR)):
        api.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
            party_id=party_id, name=party_id, kind=kind, region="310101")),
            timeout=RPC_TIMEOUT_S)
    units = api.codes(tenant, gs1.gtin, 40, lot=LOT)
    (case,) = api.codes(tenant, gs1.gtin, 1, lot=LOT, level=cpb.PACKAGING_LEVEL_CASE)
    spare = api.codes(tenant, gs1.gtin, 5, lot=LOT)  # issued, never used
    nmpa_codes = api.codes(tenant, nmpa.nmpa_id, 10)
    context = lpb.EventContext(party_id="PLANT")
    assert life.Commission(lpb.CommissionRequest(
        tenant=tenant, codes=[*units, case], lot=LOT, context=context),
        timeout=RPC_TIMEOUT_S).applied
    assert life.Aggregate(lpb.AggregateRequest(
        tenant=tenant, parent=case, children=units[:10], context=context),
        timeout=RPC_TIMEOUT_S).applied
    assert life.Ship(lpb.ShipRequest(
        tenant=tenant, codes=[case, *units[10:20]], destination="WH", context=context),
        timeout=RPC_TIMEOUT_S).applied
    assert api.give_back(tenant, spare[:2]).voided == 2
    assert life.Decommission(lpb.DecommissionRequest(
        tenant=tenant, codes=units[39:], target=cpb.CODE_STATUS_DISPENSED, context=context),
        timeout=RPC_TIMEOUT_S).applied
    # A distributor scanning a dispensed pack it never held: a suspected clone, naming it.
    assert api.verify(tenant, units[39], party_id="WH").verdict == vpb.VERDICT_GENUINE
    trace = trace_pb2_grpc.TraceStub(verify_channel)
    deadline = time.monotonic() + 30
    while not trace.ListAlerts(tpb.ListAlertsRequest(tenant=tenant),
                               timeout=RPC_TIMEOUT_S).alerts:
        assert time.monotonic() < deadline, "the clone alert was never stored"
        time.sleep(0.1)
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2025-03-05T09:45:00Z",
        "epcisBody": {"eventList": [{
            "type": "ObjectEvent", "eventID": "urn:uuid:at-rest-1",
            "eventTime": "2025-03-05T09:30:00.250+01:00", "eventTimeZoneOffset": "+01:00",
            "epcList": [f"urn:epc:id:sgtin:0614141.107346.{s}" for s in FOREIGN_SERIALS],
            "action": "OBSERVE", "bizStep": "receiving", "disposition": "in_progress",
            "readPoint": {"id": PARTNER_SGLN}, "bizLocation": {"id": PARTNER_SGLN}}]}}
    imported = life.ImportEpcis(lpb.ImportEpcisRequest(
        tenant=tenant, document=json.dumps(document)), timeout=RPC_TIMEOUT_S)
    assert imported.changed == len(FOREIGN_SERIALS) and not imported.failures, imported
    foreign = [f"(01){FOREIGN_GTIN}(21){s}" for s in FOREIGN_SERIALS]

    answers = api.verify_batch(tenant, [*units, case, *spare, *nmpa_codes, *foreign])
    assert list(answers.verdicts) == [vpb.VERDICT_GENUINE] * (len(answers.verdicts) - 2) + [
        vpb.VERDICT_KNOWN_FOREIGN] * 2
    assert set(answers.statuses[:39]) == {cpb.CODE_STATUS_ACTIVE}
    assert list(answers.statuses[41:43]) == [cpb.CODE_STATUS_VOIDED] * 2

    home = servers.data / "tenants" / tenant
    raw = (home / "ledger" / "data.mdb").read_bytes()
    alerts = (home / "alerts" / "data.mdb").read_bytes()
    forms = [form for code in [*units, case, *spare, *nmpa_codes, *foreign]
             for form in written_forms(code, 7)]
    assert [form for form in forms if form in raw] == []
    assert [form for form in forms if form in alerts] == []
    # The clear parts are still there: what product the ledger is about is no secret.
    assert gs1.gtin.encode() in raw
