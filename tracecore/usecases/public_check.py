"""What a patient or pharmacist sees when checking a printed code: genuine or not, the product as
printed on the pack, and the warnings that matter to whoever holds it.

It never tells who holds a pack, where it has been, stock or price: ``PublicCheck`` has no field
for any of them, so no page built from it can show one.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from pharmatrace.v1 import common_pb2 as pb

from tracecore import codes, gs1, regions
from tracecore.errors import ParseError
from tracecore.regions import RegionLevel
from tracecore.schemes.repair import repair_candidates
from tracecore.status import Status
from tracecore.usecases.declare import PUBLIC, READERS, Scope, use_case
from tracecore.usecases.resolver import Catalogue
from tracecore.verification import Alert, Answers, ScanContext, Verdict

#: pharmatrace.v1.ScanPurpose CONSUMER: a scan by a patient, not by the supply chain.
CONSUMER_PURPOSE = 1
#: ``verify(tenant, text, context, now_ms)``: one code verified (and its scan counted) in a tenant.
Verify = Callable[[str, str, ScanContext, int], Answers]


class Outcome(enum.StrEnum):
    """The headline of a check, from best to worst."""

    GENUINE = "genuine"
    """Ours, on the market, nothing to say against it."""
    CAUTION = "caution"
    """Ours, but someone should look: already dispensed, scanned suspiciously often or far
    apart, printed lot or expiry not the recorded ones."""
    DO_NOT_USE = "do_not_use"
    """Ours, and not to be used: recalled, withdrawn, expired, destroyed, stolen, or a code that
    was never put on a pack."""
    NOT_GENUINE = "not_genuine"
    """Not a code any manufacturer here issued: forged, mistyped, or under a revoked key."""
    KNOWN_FOREIGN = "known_foreign"
    """Recorded by the tenant asked, but issued by another party: it cannot vouch for it."""
    PRODUCT_ONLY = "product_only"
    """The text names a product (a GTIN without serial), not one pack: nothing to verify."""
    UNREADABLE = "unreadable"
    """Not a code in any printed form."""


class Warning(enum.StrEnum):
    """One thing the holder of the pack should know; pages word each one."""

    RECALLED = "recalled"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    DESTROYED_OR_STOLEN = "destroyed_or_stolen"
    VOIDED = "voided"
    NOT_COMMISSIONED = "not_commissioned"
    ALREADY_DISPENSED = "already_dispensed"
    DECOMMISSIONED = "decommissioned"
    """Taken out of the supply chain other than by dispensing (exported, sample, locked...)."""
    CLONE_SUSPECTED = "clone_suspected"
    DATA_MISMATCH = "data_mismatch"
    DIVERSION = "diversion"
    CHECKED_BEFORE = "checked_before"
    """The scan count and first check say someone checked this pack before."""


_STOP = frozenset({Warning.RECALLED, Warning.WITHDRAWN, Warning.EXPIRED,
                   Warning.DESTROYED_OR_STOLEN, Warning.VOIDED, Warning.NOT_COMMISSIONED})
_CAUTION = frozenset({Warning.ALREADY_DISPENSED, Warning.DECOMMISSIONED,
                      Warning.CLONE_SUSPECTED, Warning.DATA_MISMATCH, Warning.DIVERSION})
_ALERT_WARNINGS = (
    (Alert.RECALLED, Warning.RECALLED),
    (Alert.WITHDRAWN, Warning.WITHDRAWN),
    (Alert.EXPIRED, Warning.EXPIRED),
    (Alert.DESTROYED_OR_STOLEN, Warning.DESTROYED_OR_STOLEN),
    (Alert.VOIDED, Warning.VOIDED),
    (Alert.NOT_COMMISSIONED, Warning.NOT_COMMISSIONED),
    (Alert.CLONE_SUSPECTED, Warning.CLONE_SUSPECTED),
    (Alert.DATA_MISMATCH, Warning.DATA_MISMATCH),
    (Alert.DIVERSION, Warning.DIVERSION),
)
# The alerts' bits, worked out once rather than on every check.
_ALERT_BITS = tuple((alert.bit, warning) for alert, warning in _ALERT_WARNINGS)
_DECOMMISSIONED_BIT = Alert.ALREADY_DECOMMISSIONED.bit


@dataclass(frozen=True, slots=True)
class PublicProduct:
    """The product as its pack and leaflet describe it."""

    name: str
    generic_name: str
    strength: str
    pack_spec: str
    dosage_form: str
    mah: str
    manufacturer: str
    approval_number: str

    @classmethod
    def of(cls, p: pb.Product) -> PublicProduct:
        # A verifier hands out the same record object for as long as it keeps it: its public
        # part is made once. The record is held beside it, so its id names no other object.
        known = _PUBLIC_PRODUCTS.get(id(p))
        if known is not None and known[0] is p:
            return known[1]
        pack = p.pack_spec or (str(p.pack_size) if p.pack_size else "")
        made = cls(p.name, p.generic_name, p.strength, pack, p.form, p.mah, p.manufacturer,
                   p.approval_number)
        if len(_PUBLIC_PRODUCTS) >= _PUBLIC_PRODUCTS_KEPT:
            _PUBLIC_PRODUCTS.clear()
        _PUBLIC_PRODUCTS[id(p)] = (p, made)
        return made


#: id of a product record -> the record and its public part.
_PUBLIC_PRODUCTS: dict[int, tuple[pb.Product, PublicProduct]] = {}
_PUBLIC_PRODUCTS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class PublicCheck:
    """The answer to one check, with nothing a consumer may not see."""

    outcome: Outcome
    code: str = ""
    """The canonical code checked ("" when unreadable)."""
    reason: str = ""
    """Why the text is unreadable or not genuine, for people."""
    product: PublicProduct | None = None
    lot: str = ""
    expires_on: str = ""
    """YYYY-MM-DD."""
    warnings: tuple[Warning, ...] = ()
    scan_count: int = 0
    """Checks of this pack so far, this one included."""
    first_checked_ms: int = 0
    first_province: str = ""
    """GB/T 2260 prefix ("44") of the province of the first check, "" when it did not say."""
    repaired: str = ""
    """A scrambled scan read as ``code``: what was repaired ("" when nothing was)."""


@use_case(roles={PUBLIC, *READERS}, writes=False, scope=Scope.TENANT)
def check(catalogue: Catalogue, verify: Verify, text: str, *, now_ms: int) -> PublicCheck:
    """Checks one printed code in any form and counts the scan like any verification.

    The code belongs to the tenant whose key signed it: a GTIN registered by several tenants
    is tried in each until one recognises the code's check characters.
    """
    try:
        scan = codes.parse_one(text)
    except ParseError as exc:
        # A scrambled scan is read by the verifier of the tenant that owns its product, found
        # here through the candidate readings.
        found = _first_reading(catalogue, text)
        if found is None:
            return _product_only(catalogue, text) or PublicCheck(Outcome.UNREADABLE,
                                                                 reason=exc.reason)
        scan = found
    code = scan.code
    owners = (catalogue.sscc_owners(code.serial) if code.scheme is codes.Scheme.SSCC
              else catalogue.owners(code.product))
    if not owners:
        # Answered like a code its manufacturer never issued: who is a customer here is not
        # told to strangers.
        return PublicCheck(Outcome.NOT_GENUINE, scan.code.text(), _NEVER_ISSUED)
    # Where an anonymous visitor says it is would be trusted by nobody: the scan has a purpose,
    # no place (its first province comes from a credential's scan).
    context = ScanContext(purpose=CONSUMER_PURPOSE)
    answers = None
    for tenant in owners:
        answers = verify(tenant, text, context, now_ms)
        if answers.verdicts[0] != Verdict.BAD_SIGNATURE or answers.reasons[0].startswith(
                "minted under a revoked"):
            break
    assert answers is not None
    checked = _public(answers, answers.codes[0] or scan.code.text(), tenant)
    if answers.repairs.get(0) and checked.outcome is not Outcome.NOT_GENUINE:
        return replace(checked, repaired=answers.repairs[0])
    return checked


def _first_reading(catalogue: Catalogue, text: str) -> codes.Scan | None:
    """The first reading of a scan that does not parse whose product a tenant here owns."""
    for candidate, _ in repair_candidates(text):
        try:
            scan = codes.parse(candidate)
        except ParseError:
            continue
        if catalogue.owners(scan.code.product):
            return scan
    return None


_NEVER_ISSUED = "this code was never issued: the pack may be counterfeit"


def _public(answers: Answers, code: str, tenant: str) -> PublicCheck:
    verdict = answers.verdicts[0]
    if verdict == Verdict.KNOWN_FOREIGN:
        minter = answers.minted_by.get(0) or "another company"
        recorded = answers.products[answers.product_indexes[0]] \
            if answers.product_indexes[0] >= 0 else None
        return PublicCheck(Outcome.KNOWN_FOREIGN, code,
                           f"recorded by {tenant} but issued by {minter}",
                           PublicProduct.of(recorded) if recorded is not None and recorded.name
                           else None, scan_count=answers.scan_counts[0],
                           first_checked_ms=answers.first_verified_ms[0])
    if verdict != Verdict.GENUINE:
        reason = (_NEVER_ISSUED
                  if verdict != Verdict.INVALID_FORMAT else answers.reasons[0])
        return PublicCheck(Outcome.NOT_GENUINE, code, reason)
    mask = answers.alert_masks[0]
    warnings = [w for bit, w in _ALERT_BITS if mask & bit]
    if mask & _DECOMMISSIONED_BIT:
        warnings.append(Warning.ALREADY_DISPENSED if answers.statuses[0] == Status.DISPENSED
                        else Warning.DECOMMISSIONED)
    if answers.scan_counts[0] > 1:
        warnings.append(Warning.CHECKED_BEFORE)
    product = batch = None
    if answers.product_indexes[0] >= 0:
        product = PublicProduct.of(answers.products[answers.product_indexes[0]])
    if answers.batch_indexes[0] >= 0:
        batch = answers.batches[answers.batch_indexes[0]]
    outcome = (Outcome.DO_NOT_USE if _STOP.intersection(warnings)
               else Outcome.CAUTION if _CAUTION.intersection(warnings) else Outcome.GENUINE)
    first_region = answers.first_regions.get(0, 0)
    return PublicCheck(outcome, code, "", product, batch.lot if batch else "",
                       batch.expires_on if batch else "", tuple(warnings),
                       answers.scan_counts[0], answers.first_verified_ms[0],
                       regions.rollup(f"{first_region:06d}", RegionLevel.PROVINCE)
                       if first_region else "")


def _product_only(catalogue: Catalogue, text: str) -> PublicCheck | None:
    """A Digital Link or HRI naming a GTIN (and maybe a lot) but no serial: the product."""
    elements = gs1.elements_of(text)
    gtin = elements.get("01")
    if gtin is None or "21" in elements:
        return None
    owners = catalogue.owners(gtin)
    if not owners:
        return PublicCheck(Outcome.NOT_GENUINE, f"(01){gtin}",
                           "no manufacturer here registered this product")
    product = catalogue.product(owners[0], gtin)
    return PublicCheck(Outcome.PRODUCT_ONLY, f"(01){gtin}",
                       "this names a product, not one pack: check the code printed on the pack",
                       PublicProduct.of(product), lot=elements.get("10", ""),
                       expires_on=_iso(elements.get("17")))


def _iso(yymmdd: str | None) -> str:
    if not yymmdd:
        return ""
    date: dt.date = gs1.expiry_date(yymmdd)
    return date.isoformat()
