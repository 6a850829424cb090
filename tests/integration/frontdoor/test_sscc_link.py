"""GS1 Digital Link /00/{sscc} over real HTTP: a logistic unit's label resolves to its check page
when a tenant here allocated it, and is refused readably otherwise."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import grpc
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import logistics_pb2 as spb
from pharmatrace.v1 import logistics_pb2_grpc

from tests.integration.conftest import RPC_TIMEOUT_S
from tests.integration.frontdoor.conftest import PLANT, Door, Shop
from tracecore import sscc


def _ssccs(door: Door, tenant: str, prefix: str, count: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{door.codegen.port}") as channel:
        units = logistics_pb2_grpc.LogisticUnitsStub(channel)
        units.RegisterCompanyPrefix(spb.RegisterCompanyPrefixRequest(
            tenant=tenant, company_prefix=prefix), timeout=RPC_TIMEOUT_S)
        return list(units.RequestSsccs(spb.RequestSsccsRequest(
            tenant=tenant, request_id=f"req-{uuid.uuid4().hex}", count=count),
            timeout=RPC_TIMEOUT_S).ssccs)


def _prefix() -> str:
    return "9" + str(uuid.uuid4().int)[:8]


def test_an_sscc_label_redirects_to_the_check_page_of_that_logistic_unit(door: Door,
                                                                         shop: Shop) -> None:
    """/00/{sscc} answers 307 to /check for that SSCC; following it shows a genuine unit."""
    pack = shop.pack(count=2)
    (case,) = _ssccs(door, pack.tenant, _prefix(), 1)
    assert door.lifecycle.Aggregate(lpb.AggregateRequest(
        tenant=pack.tenant, parent=case, children=pack.codes, partial=True,
        context=lpb.EventContext(party_id=PLANT)), timeout=RPC_TIMEOUT_S).applied
    with door.client() as http:
        answer = http.get(f"/00/{case}")
    assert answer.status_code == 307
    target = urlsplit(answer.headers["location"])
    assert target.path == "/check"
    assert parse_qs(target.query)["code"][0].endswith(f"/00/{case}")
    with door.client(follow_redirects=True) as http:
        page = http.get(f"/00/{case}")
    assert page.status_code == 200 and 'data-outcome="genuine"' in page.text


def test_an_sscc_linkset_lists_the_check_page_as_default_and_verification_service(
    door: Door, shop: Shop,
) -> None:
    """linkType=linkset answers the RFC 9264 linkset anchored at /00/{sscc}."""
    (label,) = _ssccs(door, shop.tenant(), _prefix(), 1)
    with door.client() as http:
        answer = http.get(f"/00/{label}", params={"linkType": "linkset"})
    assert answer.status_code == 200
    (context,) = answer.json()["linkset"]
    assert context["anchor"].endswith(f"/00/{label}")
    assert "https://gs1.org/voc/defaultLink" in context
    assert "https://gs1.org/voc/verificationService" in context


def test_an_sscc_nobody_allocated_or_a_bad_check_digit_is_refused_readably(door: Door) -> None:
    """An SSCC no tenant allocated is 404; a wrong check digit is 400 naming it."""
    stranger = sscc.mint("8765432", 0, 1)
    wrong = stranger[:17] + str((int(stranger[17]) + 1) % 10)
    with door.client() as http:
        unknown = http.get(f"/00/{stranger}")
        malformed = http.get(f"/00/{wrong}")
    assert unknown.status_code == 404 and "not known" in unknown.text
    assert malformed.status_code == 400 and "check digit" in malformed.text
