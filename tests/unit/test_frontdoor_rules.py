"""The front door's rules without a server or a ledger: which link a resolver picks, what a
consumer sees, and the LVMS answer, each over fakes of what it reads."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.credentials import Principal, Role
from tracecore.errors import InvalidArgument, NotFound, PermissionDenied
from tracecore.status import Status
from tracecore.usecases import partner_verification as partner
from tracecore.usecases.public_check import Outcome, Warning, check
from tracecore.usecases.resolver import Link, choose_language, compact_link_type, resolve
from tracecore.verification import Alert, Answers, ScanContext, Verdict

GTIN = "09501101530003"
SERIAL = "01ABCDEFGHJKMNPQRSTV"
ROOT = "https://id.example.com"


class Catalogue:
    def __init__(self, product: pb.Product | None) -> None:
        self._product = product

    def owners(self, product_id: str) -> Sequence[str]:
        return ["acme"] if self._product is not None and product_id == GTIN else []

    def product(self, tenant: str, product_id: str) -> pb.Product:
        assert self._product is not None
        return self._product

    def sscc_owners(self, code: str) -> Sequence[str]:
        return []


def answers(verdict: Verdict = Verdict.GENUINE, *, status: Status = Status.ACTIVE,
            alerts: int = 0, scans: int = 1, lot: str = "L1",
            expires_on: str = "2030-06-30") -> Answers:
    out = Answers()
    out.verdicts.append(verdict)
    out.statuses.append(status)
    out.alert_masks.append(alerts)
    out.scan_counts.append(scans)
    out.first_verified_ms.append(1_760_000_000_000)
    out.codes.append(f"(01){GTIN}(21){SERIAL}")
    out.reasons.append("")
    out.levels.append(1)
    genuine = verdict == Verdict.GENUINE
    out.product_indexes.append(0 if genuine else -1)
    out.batch_indexes.append(0 if genuine else -1)
    if genuine:
        out.products.append(pb.Product(gtin=GTIN, name="Amoxicillin", mah="MAH Ltd"))
        out.batches.append(pb.Batch(product=GTIN, lot=lot, expires_on=expires_on))
    return out


def product_with(*links: pb.ProductLink) -> pb.Product:
    return pb.Product(gtin=GTIN, name="Amoxicillin", links=list(links))


def test_the_default_link_is_the_check_page_with_the_whole_identifier() -> None:
    """Without a link type the resolver picks the check page for the very identifier asked."""
    found = resolve(Catalogue(product_with()), root=ROOT, path=f"/01/{GTIN}/21/{SERIAL}",
                    query="17=300630", link_type="", wants_linkset=False, languages=[])
    assert found.target is not None
    assert found.target.href.startswith(f"{ROOT}/check?code=")
    assert "17%3D300630" in found.target.href
    assert found.anchor == f"{ROOT}/01/{GTIN}/21/{SERIAL}"


def test_linkset_wanted_by_accept_unless_a_link_type_is_named() -> None:
    """Accept: linkset answers the linkset; a named link type still redirects."""
    catalogue = Catalogue(product_with(pb.ProductLink(link_type="gs1:pip", href="https://p")))
    asked = {"root": ROOT, "path": f"/01/{GTIN}", "query": "", "languages": []}
    assert resolve(catalogue, link_type="", wants_linkset=True, **asked).target is None
    named = resolve(catalogue, link_type="gs1:pip", wants_linkset=True, **asked)
    assert named.target is not None and named.target.href == "https://p"


def test_unknown_products_and_link_types_are_not_found_bad_uris_invalid() -> None:
    """An unregistered GTIN and a missing link type are NotFound; a bad check digit is
    InvalidArgument naming it."""
    with pytest.raises(NotFound):
        resolve(Catalogue(None), root=ROOT, path=f"/01/{GTIN}", query="", link_type="",
                wants_linkset=False, languages=[])
    with pytest.raises(NotFound):
        resolve(Catalogue(product_with()), root=ROOT, path=f"/01/{GTIN}", query="",
                link_type="gs1:smpc", wants_linkset=False, languages=[])
    with pytest.raises(InvalidArgument, match="check digit"):
        resolve(Catalogue(product_with()), root=ROOT, path="/01/09501101530004", query="",
                link_type="", wants_linkset=False, languages=[])


def test_language_choice() -> None:
    """Exact tag first, then the same primary language, then a link for every language."""
    links = [Link("gs1:epil", "en", "en"), Link("gs1:epil", "zh", "zh-CN"),
             Link("gs1:epil", "any")]
    assert choose_language(links, ["zh-tw"]).href == "zh"
    assert choose_language(links, ["de", "en-us"]).href == "en"
    assert choose_language(links, ["fr"]).href == "any"
    assert choose_language(links[:2], []).href == "en"


def test_link_types_in_every_written_form() -> None:
    """gs1:pip, pip and the full vocabulary URI name the same link type."""
    assert {compact_link_type(t) for t in ("gs1:pip", "pip", "https://gs1.org/voc/pip",
                                           "https://ref.gs1.org/voc/pip")} == {"gs1:pip"}


@pytest.mark.parametrize(("alert", "status", "outcome", "warning"), [
    (0, Status.ACTIVE, Outcome.GENUINE, None),
    (Alert.RECALLED.bit, Status.RECALLED, Outcome.DO_NOT_USE, Warning.RECALLED),
    (Alert.EXPIRED.bit, Status.ACTIVE, Outcome.DO_NOT_USE, Warning.EXPIRED),
    (Alert.ALREADY_DECOMMISSIONED.bit, Status.DISPENSED, Outcome.CAUTION,
     Warning.ALREADY_DISPENSED),
    (Alert.ALREADY_DECOMMISSIONED.bit, Status.EXPORTED, Outcome.CAUTION,
     Warning.DECOMMISSIONED),
    (Alert.CLONE_SUSPECTED.bit, Status.ACTIVE, Outcome.CAUTION, Warning.CLONE_SUSPECTED),
])
def test_what_a_consumer_sees(alert: int, status: Status, outcome: Outcome,
                              warning: Warning | None) -> None:
    """Each alert of a genuine pack becomes the consumer's outcome and warning."""
    def verify(tenant: str, text: str, context: ScanContext, now: int) -> Answers:
        return answers(status=status, alerts=alert)

    seen = check(Catalogue(product_with()), verify, f"(01){GTIN}(21){SERIAL}", now_ms=0)
    assert seen.outcome is outcome
    assert (warning in seen.warnings) if warning else not seen.warnings
    assert seen.product is not None and seen.product.mah == "MAH Ltd"


def test_consumer_checks_count_as_consumer_scans_and_unknown_codes_are_not_genuine() -> None:
    """The check verifies with the consumer purpose; a code not in the ledger is not
    genuine; a GTIN alone shows the product only."""
    purposes = []

    def verify(tenant: str, text: str, context: ScanContext, now: int) -> Answers:
        purposes.append(context.purpose)
        return answers(Verdict.UNKNOWN)

    catalogue = Catalogue(product_with())
    assert check(catalogue, verify, f"(01){GTIN}(21){SERIAL}", now_ms=0).outcome is (
        Outcome.NOT_GENUINE)
    assert purposes == [1]
    assert check(catalogue, verify, f"{ROOT}/01/{GTIN}", now_ms=0).outcome is (
        Outcome.PRODUCT_ONLY)
    assert check(catalogue, verify, "hello", now_ms=0).outcome is Outcome.UNREADABLE


class Directory:
    def party_gln(self, tenant: str, party_id: str) -> str:
        return {"WHOLESALER": "0614141000005"}.get(party_id, "")

    def responder_gln(self, tenant: str) -> str:
        return "0614141000012"


def lvms(result: Answers, *, role: Role = Role.DISTRIBUTOR, gln: str = "0614141000005",
         lot: str = "L1", exp: str = "300630") -> tuple[partner.PartnerAnswer,
                                                        list[lpb.AuditRecord]]:
    trail: list[lpb.AuditRecord] = []
    asked = partner.request(gtin=GTIN, serial=SERIAL, lot=lot, exp=exp,
                            corr_uuid="0d8b5e1c-6f0e-4b8a-9d2f-5c1b2a3d4e5f",
                            context="dscsaSaleableReturn", req_gln=gln)
    caller = Principal("acme", role, "c1", "WHOLESALER")
    answer = partner.verify_for_partner(
        Directory(), lambda *_: result, lambda tenant, entry: trail.append(entry), caller,
        asked, now_ms=0)
    return answer, trail


def test_lvms_answers() -> None:
    """Matching packs are verified (with Recalled, Expired or Suspect where it applies); a lot
    or expiry that differ give the standard's reason; every answer is audited."""
    ok, trail = lvms(answers())
    assert (ok.verified, ok.failure_reason, ok.additional_info) == (True, None, None)
    assert ok.responder_gln == "0614141000012" and "verified=true" in trail[0].summary
    recalled, _ = lvms(answers(status=Status.RECALLED, alerts=Alert.RECALLED.bit))
    assert recalled.additional_info is partner.AdditionalInfo.RECALLED
    assert lvms(answers(), lot="L2")[0].failure_reason is (
        partner.FailureReason.NO_MATCH_GTIN_SERIAL_LOT)
    assert lvms(answers(), exp="300629")[0].failure_reason is (
        partner.FailureReason.NO_MATCH_GTIN_SERIAL_EXPIRY)
    assert lvms(answers(), lot="L2", exp="300629")[0].failure_reason is (
        partner.FailureReason.NO_MATCH_GTIN_SERIAL_LOT_EXPIRY)
    assert lvms(answers(), exp="300600")[0].verified  # day 00: the month's last day
    assert lvms(answers(Verdict.UNKNOWN))[0].failure_reason is (
        partner.FailureReason.NO_MATCH_GTIN_SERIAL)
    voided, _ = lvms(answers(status=Status.VOIDED, alerts=Alert.VOIDED.bit))
    assert (voided.verified, voided.additional_info) == (False,
                                                          partner.AdditionalInfo.ILLEGITIMATE)


def test_lvms_refusals_are_audited() -> None:
    """Another party's GLN or a line role is PermissionDenied, and still in the trail."""
    for options in ({"gln": "0614141000029"}, {"role": Role.LINE}):
        trail: list[lpb.AuditRecord] = []
        with pytest.raises(PermissionDenied):
            asked = partner.request(gtin=GTIN, serial=SERIAL, lot="L1", exp="300630",
                                    corr_uuid="0d8b5e1c-6f0e-4b8a-9d2f-5c1b2a3d4e5f",
                                    context="x", req_gln=options.get("gln", "0614141000005"))
            caller = Principal("acme", options.get("role", Role.DISTRIBUTOR), "c1", "WHOLESALER")
            partner.verify_for_partner(Directory(), lambda *_: answers(),
                                       lambda tenant, entry, kept=trail: kept.append(entry),
                                       caller,
                                       asked, now_ms=0)
        assert [e.status for e in trail] == ["PERMISSION_DENIED"]
