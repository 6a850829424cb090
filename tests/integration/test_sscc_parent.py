"""An SSCC as a logistic unit over real gRPC and a real ledger: a parent in aggregation, verified
in every written form, traced both ways, exported and imported as EPCIS."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc, logistics_pb2_grpc, trace_pb2_grpc
from pharmatrace.v1 import logistics_pb2 as spb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Servers
from tests.integration.packing_line import PackingLine
from tracecore import sscc
from tracecore.epcis.schema import check_schema

GTIN, LOT, PREFIX = "09501101530027", "LOT-S1", "0950110"
UNIT, BUNDLE, CASE, PALLET = (cpb.PACKAGING_LEVEL_UNIT, cpb.PACKAGING_LEVEL_BUNDLE,
                              cpb.PACKAGING_LEVEL_CASE, cpb.PACKAGING_LEVEL_PALLET)


@dataclass(frozen=True)
class _Line(PackingLine):
    """A tenant packing 3 units a bundle, 2 bundles a case, 2 cases a pallet, with SSCCs."""

    units: logistics_pb2_grpc.LogisticUnitsStub
    trace: trace_pb2_grpc.TraceStub

    def ssccs(self, n: int) -> list[str]:
        return list(self.units.RequestSsccs(spb.RequestSsccsRequest(
            tenant=self.tenant, request_id=self.api.new_request_id(), extension_digit=1,
            count=n), timeout=RPC_TIMEOUT_S).ssccs)

    def traced(self, code: str) -> tpb.TraceCodeResponse:
        return self.trace.TraceCode(tpb.TraceCodeRequest(tenant=self.tenant, code=code),
                                    timeout=RPC_TIMEOUT_S)


@pytest.fixture
def line(api: Api, tenant: str, issue_channel: grpc.Channel,
         verify_channel: grpc.Channel) -> _Line:
    api.admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
        gtin=GTIN, name="Paracetamol 500 mg tablets", hierarchy=[
            cpb.PackLevel(level=BUNDLE, quantity=3), cpb.PackLevel(level=CASE, quantity=2),
            cpb.PackLevel(level=PALLET, quantity=2)])), timeout=RPC_TIMEOUT_S)
    api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
        product=GTIN, lot=LOT,
        expires_on=(dt.date.today() + dt.timedelta(days=700)).isoformat())),
        timeout=RPC_TIMEOUT_S)
    units = logistics_pb2_grpc.LogisticUnitsStub(issue_channel)
    units.RegisterCompanyPrefix(spb.RegisterCompanyPrefixRequest(
        tenant=tenant, company_prefix=PREFIX), timeout=RPC_TIMEOUT_S)
    return _Line(api, tenant, lifecycle_pb2_grpc.LifecycleStub(issue_channel), GTIN, LOT,
                 units, trace_pb2_grpc.TraceStub(verify_channel))


def test_bundles_go_into_an_sscc_case_which_then_verifies_and_traces_both_ways(
    line: _Line,
) -> None:
    """Two bundles into an allocated SSCC: applied; the SSCC verifies GENUINE and ACTIVE as a
    case in every written form; its trace lists the bundles, a bundle's trace names it."""
    (case,) = line.ssccs(1)
    bundles = [line.bundle(), line.bundle()]
    assert line.aggregate(f"(00){case}", bundles).applied
    for form in (case, f"(00){case}", f"]C100{case}", f"https://example.com/00/{case}",
                 sscc.render_epc_uri(case, len(PREFIX))):
        answer = line.api.verify(line.tenant, form)
        assert (answer.verdict, answer.status, answer.level, answer.code) == (
            vpb.VERDICT_GENUINE, cpb.CODE_STATUS_ACTIVE, CASE, f"(00){case}"), form
    traced = line.traced(case)
    assert sorted(traced.children) == sorted(line.traced(b).code for b in bundles)
    assert traced.level == CASE and traced.status == cpb.CODE_STATUS_ACTIVE
    assert list(line.traced(bundles[0]).parents) == [f"(00){case}"]


def test_sscc_cases_go_onto_an_sscc_pallet_which_ships_with_everything_in_it(
    line: _Line,
) -> None:
    """SSCC cases on an SSCC pallet make it a pallet; shipping the pallet ships its packs."""
    cases, (pallet,) = line.ssccs(2), line.ssccs(1)
    for case in cases:
        assert line.aggregate(case, [line.bundle(), line.bundle()]).applied
    assert line.aggregate(pallet, cases).applied
    assert line.api.verify(line.tenant, pallet).level == PALLET
    unit = line.traced(line.traced(cases[1]).children[0]).children[0]
    assert list(line.traced(unit).parents)[-2:] == [f"(00){cases[1]}", f"(00){pallet}"]
    line.api.admin.AddParty(apb.AddPartyRequest(tenant=line.tenant, party=cpb.Party(
        party_id="wh-1", name="Warehouse", region="310101")), timeout=RPC_TIMEOUT_S)
    assert line.lifecycle.Ship(lpb.ShipRequest(tenant=line.tenant, codes=[pallet],
                                               destination="wh-1"),
                               timeout=RPC_TIMEOUT_S).applied
    assert line.traced(unit).in_transit


def test_a_short_sscc_case_is_refused_by_the_ratio_unless_marked_partial(line: _Line) -> None:
    """The contents' pack ratio holds for a logistic unit too: one bundle is a short case."""
    (case,) = line.ssccs(1)
    bundle = line.bundle()
    refused = line.aggregate(case, [bundle])
    assert not refused.applied and "case holds 2 bundles" in refused.failures[0].reason
    assert line.aggregate(case, [bundle], partial=True).applied


def test_an_sscc_never_allocated_is_no_parent_and_verifies_as_unknown(line: _Line) -> None:
    """An SSCC past the pool counter (or under another prefix) cannot take packs and is
    unknown to verification, as a code never issued is."""
    line.ssccs(1)
    stranger = sscc.mint(PREFIX, 1, 500)
    response = line.aggregate(stranger, [line.bundle(), line.bundle()])
    assert not response.applied
    assert "not issued by this tenant" in response.failures[0].reason
    answer = line.api.verify(line.tenant, f"(00){stranger}")
    assert answer.verdict == vpb.VERDICT_UNKNOWN and answer.status == 0


def test_an_allocated_sscc_not_yet_a_parent_verifies_as_genuine_but_not_commissioned(
    line: _Line,
) -> None:
    """From the pool but on no pallet yet: genuine, ISSUED, flagged not commissioned."""
    (label,) = line.ssccs(1)
    answer = line.api.verify(line.tenant, f"]C100{label}")
    assert (answer.verdict, answer.status) == (vpb.VERDICT_GENUINE, cpb.CODE_STATUS_ISSUED)
    assert list(answer.alerts) == [vpb.ALERT_KIND_NOT_COMMISSIONED]


def test_a_twenty_digit_nmpa_reading_wins_over_a_bare_00_sscc_and_the_symbology_decides(
    line: _Line,
) -> None:
    """Bare "00"+18 digits is read as an NMPA code (unknown here); ]C1 before it is the SSCC."""
    (label,) = line.ssccs(1)
    bare = line.api.verify(line.tenant, f"00{label}")
    assert bare.code == f"00{label}" and bare.verdict != vpb.VERDICT_GENUINE
    assert line.api.verify(line.tenant, f"]C100{label}").code == f"(00){label}"


def test_the_epcis_export_names_the_sscc_as_parent_and_passes_the_schema(line: _Line) -> None:
    """The aggregation's parentID is urn:epc:id:sscc: split at the registered prefix, whatever
    prefix length the export names for GTINs (or a /00/ Digital Link); the document validates
    against the shipped EPCIS 2.0 schema."""
    (case,) = line.ssccs(1)
    assert line.aggregate(case, [line.bundle(), line.bundle()]).applied
    for form, parent in ((tpb.EPC_FORM_EPC_URI, sscc.render_epc_uri(case, len(PREFIX))),
                         (tpb.EPC_FORM_DIGITAL_LINK, f"https://id.gs1.org/00/{case}")):
        document = json.loads(line.trace.ExportEpcis(tpb.ExportEpcisRequest(
            tenant=line.tenant, epc_form=form, company_prefix_length=9),  # type: ignore[arg-type]
            timeout=RPC_TIMEOUT_S).document)
        check_schema(document)
        parents = [e.get("parentID") for e in document["epcisBody"]["eventList"]]
        assert parent in parents


def _aggregation(parent: str, child: str) -> dict[str, object]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0",
        "creationDate": "2025-01-01T00:00:00Z",
        "epcisBody": {"eventList": [{
            "type": "AggregationEvent", "action": "ADD",
            "eventTime": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "eventTimeZoneOffset": "+00:00", "bizStep": "packing",
            "parentID": parent, "childEPCs": [child],
        }]},
    }


def _import(line: _Line, document: dict[str, object]) -> lpb.ImportEpcisResponse:
    check_schema(document)
    return line.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
        tenant=line.tenant, document=json.dumps(document), best_effort=True),
        timeout=RPC_TIMEOUT_S)


def test_an_epcis_aggregation_onto_an_sscc_is_imported_and_shows_in_the_trace(
    line: _Line,
) -> None:
    """A partner's AggregationEvent ADD with an SSCC parentID and an SSCC in childEPCs puts the
    case on the pallet in this ledger."""
    (case,), (pallet,) = line.ssccs(1), line.ssccs(1)
    assert line.aggregate(case, [line.bundle(), line.bundle()]).applied
    response = _import(line, _aggregation(sscc.render_epc_uri(pallet, len(PREFIX)),
                                          sscc.render_epc_uri(case, len(PREFIX))))
    assert response.recorded == 1, response
    assert list(line.traced(case).parents) == [f"(00){pallet}"]


def test_a_partners_own_sscc_pallet_is_recorded_but_one_under_our_prefix_must_be_ours(
    line: _Line,
) -> None:
    """Our case onto a 3PL's pallet (another company's prefix) is recorded, the pallet known
    as minted elsewhere; a pallet SSCC under our prefix that we never allocated is refused."""
    (case,) = line.ssccs(1)
    assert line.aggregate(case, [line.bundle(), line.bundle()]).applied
    theirs = sscc.mint("0799999", 0, 17)
    response = _import(line, _aggregation(f"https://id.example.net/00/{theirs}",
                                          f"https://id.example.net/00/{case}"))
    assert response.recorded == 1 and not response.failures, response
    answer = line.api.verify(line.tenant, theirs)
    assert (answer.verdict, answer.level) == (vpb.VERDICT_KNOWN_FOREIGN, PALLET)
    assert list(line.traced(case).parents) == [f"(00){theirs}"]
    forged = sscc.mint(PREFIX, 1, 900)
    (other,) = line.ssccs(1)
    assert line.aggregate(other, [line.bundle(), line.bundle()]).applied
    refused = _import(line, _aggregation(f"https://id.example.net/00/{forged}",
                                         f"https://id.example.net/00/{other}"))
    assert refused.failures and "not issued by this tenant" in refused.failures[0].reason
    assert line.api.verify(line.tenant, forged).verdict == vpb.VERDICT_UNKNOWN


def test_doctor_finds_logistic_units_agreeing_with_their_events(line: _Line,
                                                                servers: Servers) -> None:
    """After SSCC cases and a pallet, and a best-effort aggregation into an SSCC that took
    nothing, `doctor` finds every record's status as its events tell it and no problem; the
    SSCC that took nothing still verifies as not yet used."""
    cases, (pallet, empty) = line.ssccs(2), line.ssccs(2)
    for case in cases:
        assert line.aggregate(case, [line.bundle(), line.bundle()]).applied
    assert line.aggregate(pallet, cases).applied
    taken = line.lifecycle.Aggregate(lpb.AggregateRequest(
        tenant=line.tenant, parent=empty, children=[cases[0]],
        context=lpb.EventContext(best_effort=True)), timeout=RPC_TIMEOUT_S)
    assert taken.failures and not taken.changed
    assert line.api.verify(line.tenant, empty).status == cpb.CODE_STATUS_ISSUED
    doctor = subprocess.run(
        [sys.executable, "-m", "pharmatrace_cli", "doctor", "--data", str(servers.data),
         "--tenant", line.tenant, "--dev"], capture_output=True, text=True, timeout=300,
        check=False)
    assert doctor.returncode == 0 and "PROBLEM" not in doctor.stdout, doctor.stdout
    assert "every code's status is what its events say" in doctor.stdout


def test_get_sscc_state_says_whether_and_under_which_prefix_an_sscc_was_allocated(
    line: _Line, refused,
) -> None:
    """GetSsccState reads any written form: allocated under the prefix, or not at all; a wrong
    check digit is INVALID_ARGUMENT naming sscc."""
    (label,) = line.ssccs(1)
    state = line.units.GetSsccState(spb.GetSsccStateRequest(
        tenant=line.tenant, sscc=f"https://example.com/00/{label}"), timeout=RPC_TIMEOUT_S)
    assert (state.sscc, state.allocated, state.company_prefix) == (label, True, PREFIX)
    stranger = line.units.GetSsccState(spb.GetSsccStateRequest(
        tenant=line.tenant, sscc=sscc.mint(PREFIX, 1, 999)), timeout=RPC_TIMEOUT_S)
    assert (stranger.allocated, stranger.company_prefix) == (False, "")
    wrong = label[:17] + str((int(label[17]) + 1) % 10)
    refused(grpc.StatusCode.INVALID_ARGUMENT, "sscc", lambda: line.units.GetSsccState(
        spb.GetSsccStateRequest(tenant=line.tenant, sscc=f"(00){wrong}"), timeout=RPC_TIMEOUT_S))
