"""Market oversight rules: recalled and withdrawn packs, diversion (窜货), suspected clones, where a
batch's packs are. Pure: the ledger modules read and write, these functions decide."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pharmatrace.v1 import common_pb2 as cpb

from tracecore import gs1, regions
from tracecore.errors import InvalidArgument, ParseError
from tracecore.status import DECOMMISSIONED, Status

#: Statuses a recall or withdrawal covers: packs on the market or already decommissioned.
RECALLABLE = frozenset({Status.ACTIVE, *DECOMMISSIONED})
#: Decommissionings that put a pack in a patient's hands.
DISPENSINGS = frozenset({Status.DISPENSED, Status.FREE_SAMPLE})
#: A supply-chain scan of a pack in one of these means a second copy of its code is about.
ENDED = frozenset({Status.DISPENSED, Status.DESTROYED, Status.VOIDED})
#: Scan purposes of the supply chain (a consumer checking a pack at home is no such scan).
SUPPLY_CHAIN_PURPOSES = frozenset({2, 3, 4})  # pharmatrace.v1.ScanPurpose RECEIVING, DISPENSING,
#                                               INSPECTION
_MS_PER_HOUR = 3_600_000


class AlertKind(enum.IntEnum):
    """``pharmatrace.v1.AlertKind``: what a verification answer flags; in masks, kind K is bit
    1 << K. DIVERSION and CLONE_SUSPECTED are also stored as alerts."""

    NOT_COMMISSIONED = 1
    VOIDED = 2
    EXPIRED = 3
    DATA_MISMATCH = 4
    KEY_REVOKED = 5
    RECALLED = 6
    WITHDRAWN = 7
    ALREADY_DECOMMISSIONED = 8
    DESTROYED_OR_STOLEN = 9
    DIVERSION = 10
    CLONE_SUSPECTED = 11
    ACCESS_REFUSED = 12
    DISPENSED_ELSEWHERE = 13

    @property
    def bit(self) -> int:
        return 1 << self.value


class AlertSource(enum.IntEnum):
    """``pharmatrace.v1.AlertSource``: what raised an alert."""

    RECEIPT = 1
    DISPENSE = 2
    SCAN = 3
    ACCESS = 4


class CloneReason(enum.IntEnum):
    """``pharmatrace.v1.CloneReason``: why a code is suspected to be cloned."""

    TRAVEL = 1
    SEEN_AFTER_END = 2
    TOO_MANY_SCANS = 3


_ACTIONS: dict[int, str] = {AlertSource.RECEIPT: "received", AlertSource.DISPENSE: "dispensed",
                            AlertSource.SCAN: "scanned"}


def lot(text: str, field: str = "lot") -> str:
    """A lot as a batch records it (GS1 AI (10)); INVALID_ARGUMENT naming ``field``."""
    if not text:
        raise InvalidArgument("is required", field=field)
    try:
        gs1.check_value("10", text)
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field=field) from exc
    return text


def effective_status(status: Status, recalled: bool, withdrawn: bool) -> Status:
    """The status a reader sees: a recall (or withdrawal) covers every pack of the batch (product)
    that is on the market or decommissioned, without rewriting any of them."""
    if status in RECALLABLE:
        if recalled:
            return Status.RECALLED
        if withdrawn:
            return Status.WITHDRAWN
    return status


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checks:
    """Diversion and clone checks of verification scans, read once when a worker starts."""

    diversion: bool = True
    """Flag scans (and packs recorded) outside the batch's authorised regions."""
    clones: bool = True
    """Flag codes seen where one physical pack cannot be."""
    max_scans: int = 20
    """A code verified more often than this is suspected to be cloned."""
    max_speed_kmh: float = 1000.0
    """Two scans further apart than this speed allows in the time between them: a clone."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Checks:
        """Thresholds from PHARMATRACE_CLONE_MAX_SCANS and PHARMATRACE_CLONE_MAX_SPEED_KMH."""
        env = dict(os.environ) if env is None else env
        checks = cls()
        try:
            max_scans = int(env.get("PHARMATRACE_CLONE_MAX_SCANS", checks.max_scans))
            speed = float(env.get("PHARMATRACE_CLONE_MAX_SPEED_KMH", checks.max_speed_kmh))
        except ValueError as exc:
            raise InvalidArgument(f"clone thresholds must be numbers: {exc}") from None
        if max_scans < 1 or not speed > 0:
            raise InvalidArgument("clone thresholds must be positive")
        return cls(max_scans=max_scans, max_speed_kmh=speed)


# -- diversion -----------------------------------------------------------------------------------


def region_text(region: int) -> str:
    """A region as the ledger stores it (an integer, 0 unknown) in its six-digit form."""
    return f"{region:06d}" if region else ""


def authorised(region: int, prefixes: Sequence[str]) -> bool:
    """Whether a stored region lies in the authorised prefixes. No prefixes: sold anywhere; an
    unknown region (0) cannot be called a diversion."""
    if not prefixes or not region:
        return True
    return regions.in_region(region_text(region), prefixes)


class RegionRule:
    """One authorisation (a batch's or a distributor's), with its answers remembered: regions
    seen are few, checks are many."""

    __slots__ = ("_answers", "by", "prefixes")

    def __init__(self, prefixes: Sequence[str], by: str) -> None:
        self.prefixes = tuple(prefixes)
        self.by = by
        self._answers: dict[int, bool] = {}

    def allows(self, region: int) -> bool:
        answer = self._answers.get(region)
        if answer is None:
            answer = self._answers[region] = authorised(region, self.prefixes)
        return answer


# -- clones --------------------------------------------------------------------------------------


#: Below this, two scans' regions are too close to tell apart: each region is one representative
#: point, and two neighbouring counties' points lie tens of kilometres apart however near their
#: shared border the scans were.
_NEAR_KM = 50.0


class Travel:
    """Whether two scans are further apart than travel allows, by region pair."""

    def __init__(self, max_speed_kmh: float) -> None:
        self.max_speed_kmh = max_speed_kmh
        self._km: dict[tuple[int, int], float] = {}

    def distance_km(self, region_a: int, region_b: int) -> float:
        pair = (region_a, region_b)
        km = self._km.get(pair)
        if km is None:
            km = self._km[pair] = regions.distance_km(region_text(region_a),
                                                      region_text(region_b))
        return km

    def impossible(self, region_a: int, at_a_ms: int, region_b: int, at_b_ms: int) -> bool:
        """Seen in ``region_a`` and then in ``region_b``: could one pack have made the trip?"""
        km = self.distance_km(region_a, region_b)
        if km < _NEAR_KM:
            return False
        return km * _MS_PER_HOUR > self.max_speed_kmh * max(0, at_b_ms - at_a_ms)


# -- alerts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert with its evidence (``pharmatrace.v1.Alert``); enums as their numbers, 0 unset."""

    kind: int
    source: int
    raised_at_ms: int
    code: str
    units: int = 0
    product: str = ""
    lot: str = ""
    region: str = ""
    party_id: str = ""
    authorised_regions: tuple[str, ...] = ()
    authorised_by: str = ""
    clone_reason: int = 0
    previous_region: str = ""
    previous_at_ms: int = 0
    distance_km: float = 0.0
    scan_count: int = 0
    status: int = 0
    detail: str = ""
    address: str = ""
    """For ACCESS_REFUSED: the address refused, the credential it claimed, how many times."""
    credential: str = ""
    refusals: int = 0
    alert_id: int = 0
    """Increasing in the order alerts were stored; 0 until stored."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts a listing wants; empty fields match everything."""

    kind: int = 0
    product: str = ""
    lot: str = ""
    region: str = ""           # canonical GB/T 2260 prefix
    from_ms: int = 0
    to_ms: int = 0

    def matches(self, alert: AlertRecord) -> bool:
        return not (
            (self.kind and alert.kind != self.kind)
            or (self.product and alert.product != self.product)
            or (self.lot and alert.lot != self.lot)
            or (self.region and not alert.region.startswith(self.region))
            or (self.from_ms and alert.raised_at_ms < self.from_ms)
            or (self.to_ms and alert.raised_at_ms >= self.to_ms)
        )


@dataclass(frozen=True, slots=True)
class Raised:
    """An alert to store once: ``key`` says what "once" means (same code, rule and place)."""

    key: bytes
    alert: AlertRecord


def diversion(code_key: bytes, code: str, *, source: int, at_ms: int, units: int,
              product: str, lot: str, region: int, party_id: str, rule: RegionRule,
              status: Status) -> Raised:
    """A pack seen outside the regions ``rule`` authorises."""
    seen = region_text(region)
    where = f"in {regions.display(seen)}"
    whose = "lot " + lot if rule.by == "batch" else "distributor " + rule.by
    action = _ACTIONS[source]
    by = f" by {party_id}" if party_id else ""
    alert = AlertRecord(
        kind=AlertKind.DIVERSION, source=source, raised_at_ms=at_ms, code=code, units=units,
        product=product, lot=lot, region=seen, party_id=party_id,
        authorised_regions=rule.prefixes, authorised_by=rule.by, status=int(status),
        detail=(f"{code} {action}{by} {where}, outside {', '.join(rule.prefixes)} authorised "
                f"for {whose}"),
    )
    # A scan is one fact per place; a receipt or dispensing is a custody event of its own.
    event = () if source == AlertSource.SCAN else (party_id, at_ms)
    return Raised(_key(b"D", code_key, int(source), seen, rule.by, *event), alert)


def dispensed_elsewhere(code_key: bytes, code: str, *, at_ms: int, product: str, lot: str,
                        party_id: str, holder: str) -> Raised:
    """A pack dispensed by a party that did not hold it, where the tenant's policy allows it:
    the pack skipped a receipt (still in a distributor's case, say), which a regulator wants
    to see."""
    alert = AlertRecord(
        kind=AlertKind.DISPENSED_ELSEWHERE, source=AlertSource.DISPENSE, raised_at_ms=at_ms,
        code=code, units=1, product=product, lot=lot, party_id=party_id,
        status=int(Status.DISPENSED),
        detail=f"{code} dispensed by {party_id} while {holder} held it")
    return Raised(_key(b"E", code_key, party_id, at_ms), alert)


def clone(code_key: bytes, code: str, reason: int, *, at_ms: int, product: str, lot: str,
          region: int, party_id: str, status: Status, scan_count: int,
          previous_region: int = 0, previous_at_ms: int = 0, distance_km: float = 0.0
          ) -> Raised:
    """A code seen where one physical pack cannot be."""
    seen = region_text(region)
    if reason == CloneReason.TRAVEL:
        hours = (at_ms - previous_at_ms) / _MS_PER_HOUR
        detail = (f"{code} scanned in {seen} {hours * 60:.0f} min after a scan in "
                  f"{region_text(previous_region)}, {distance_km:,.0f} km away")
    elif reason == CloneReason.SEEN_AFTER_END:
        detail = (f"{code} scanned by {party_id or 'the supply chain'} although it is "
                  f"{status.name}")
    else:
        detail = f"{code} verified {scan_count} times"
    alert = AlertRecord(
        kind=AlertKind.CLONE_SUSPECTED, source=AlertSource.SCAN, raised_at_ms=at_ms,
        code=code, units=1, product=product, lot=lot, region=seen, party_id=party_id,
        clone_reason=reason, previous_region=region_text(previous_region),
        previous_at_ms=previous_at_ms, distance_km=distance_km, scan_count=scan_count,
        status=int(status), detail=detail,
    )
    # Once per code and reason; travel once per place seen, seen-after-end once per party.
    scope = seen if reason == CloneReason.TRAVEL else (
        party_id if reason == CloneReason.SEEN_AFTER_END else "")
    return Raised(_key(b"C", code_key, int(reason), scope), alert)


def _key(kind: bytes, code_key: bytes, *parts: object) -> bytes:
    return kind + code_key + b"\x00" + "\x00".join(str(p) for p in parts).encode()


# -- where a batch's packs are -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """Units of a batch with one holder, status and transit flag (a row of the counters)."""

    party: cpb.Party | None
    status: Status
    in_transit: bool
    units: int


@dataclass(frozen=True, slots=True)
class RecallNote:
    """A recall or withdrawal as recorded in the journal."""

    when_ms: int
    reason: str
    who: str
    party_id: str
    event_seq: int


@dataclass(slots=True)
class Totals:
    """Units of a batch by where they are; they partition ``units``."""

    units: int = 0
    at_plant: int = 0
    in_stock: int = 0
    in_transit: int = 0
    dispensed: int = 0
    other_decommissioned: int = 0
    destroyed: int = 0
    voided: int = 0


@dataclass(frozen=True, slots=True)
class HolderRow:
    """One holder, status and transit flag of a batch's units."""

    party_id: str
    party_name: str
    kind: int
    region: str
    status: Status
    in_transit: bool
    units: int


@dataclass(slots=True)
class ProvinceRow:
    """A province's share of a batch's units on the market or dispensed."""

    region: str
    name: str
    in_stock: int = 0
    in_transit: int = 0
    dispensed: int = 0


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """A batch's location as readers see it: totals, holders in order, provinces with units."""

    totals: Totals
    holders: list[HolderRow]
    provinces: list[ProvinceRow]


@dataclass(slots=True)
class Location:
    """Where a batch's units are now, by holder, status and transit."""

    product: cpb.Product
    batch: cpb.Batch
    recall: RecallNote | None = None
    withdrawal: RecallNote | None = None
    holdings: list[Holding] = field(default_factory=list)

    def whereabouts(self) -> Whereabouts:
        """Totals that partition the units, holders, provinces."""
        totals = Totals()
        holders: list[HolderRow] = []
        provinces: dict[str, ProvinceRow] = {}
        for h in sorted(self.holdings, key=_holding_order):
            party = h.party
            kind = party.kind if party is not None else cpb.PARTY_KIND_UNSPECIFIED
            totals.units += h.units
            if h.status is Status.ACTIVE:
                if h.in_transit:
                    totals.in_transit += h.units
                elif party is None or kind == cpb.PARTY_KIND_PLANT:
                    totals.at_plant += h.units
                else:
                    totals.in_stock += h.units
            elif h.status in DISPENSINGS:
                totals.dispensed += h.units
            elif h.status in DECOMMISSIONED:
                totals.other_decommissioned += h.units
            elif h.status in (Status.DESTROYED, Status.STOLEN):
                totals.destroyed += h.units
            elif h.status is Status.VOIDED:
                totals.voided += h.units
            holders.append(HolderRow(
                party_id=party.party_id if party else "", party_name=party.name if party else "",
                kind=kind, region=party.region if party else "", status=h.status,
                in_transit=h.in_transit, units=h.units,
            ))
            if h.status is Status.VOIDED:
                continue
            province = party.region[:2] if party is not None and party.region else ""
            row = provinces.get(province)
            if row is None:
                row = provinces[province] = ProvinceRow(
                    province, regions.display(province) if province else "")
            if h.status is Status.ACTIVE:
                if h.in_transit:
                    row.in_transit += h.units
                else:
                    row.in_stock += h.units
            elif h.status in DISPENSINGS:
                row.dispensed += h.units
        shown = [r for _, r in sorted(provinces.items())
                 if r.in_stock or r.in_transit or r.dispensed]
        return Whereabouts(totals, holders, shown)


def _holding_order(h: Holding) -> tuple[str, int, bool]:
    return (h.party.party_id if h.party is not None else "", int(h.status), h.in_transit)


# -- regional report -----------------------------------------------------------------------------


@dataclass(slots=True)
class RegionFigures:
    stock: int = 0
    recalled: int = 0
    received: int = 0
    sold: int = 0
    returned: int = 0

    def any(self) -> bool:
        return bool(self.stock or self.recalled or self.received or self.sold or self.returned)


def report_region(region: int, level: regions.RegionLevel) -> str:
    """The report's row key of a stored region: its canonical prefix at ``level``; "" unknown."""
    return regions.rollup(region_text(region), level) if region else ""


def within(prefix: str, limit: str) -> bool:
    """Whether a row's region prefix lies inside the report's region limit ("" = everywhere)."""
    return not limit or (bool(prefix) and prefix.startswith(limit))


@dataclass(frozen=True, slots=True)
class RegionRow:
    """One product in one region: stock now, flows over the report's period."""

    product: str
    product_name: str
    region: str
    region_name: str
    stock: int
    recalled: int
    received: int
    sold: int
    returned: int


def report_rows(products: Iterable[tuple[cpb.Product, dict[str, RegionFigures]]]
                ) -> list[RegionRow]:
    """Rows by product (in the given order), then region; regions with nothing to show left
    out."""
    rows: list[RegionRow] = []
    for product, by_region in products:
        for prefix in sorted(by_region, key=lambda p: (p == "", p)):
            figures = by_region[prefix]
            if not figures.any():
                continue
            rows.append(RegionRow(
                product=product.gtin or product.nmpa_id, product_name=product.name,
                region=prefix, region_name=regions.display(prefix) if prefix else "unknown",
                stock=figures.stock, recalled=figures.recalled, received=figures.received,
                sold=figures.sold, returned=figures.returned,
            ))
    return rows
