"""Market oversight rules: recalled and withdrawn packs, diversion (窜货), suspected clones, where a
batch's packs are. Pure: the ledger modules read and write, these functions decide."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb

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
_ACTIONS: dict[int, str] = {tpb.ALERT_SOURCE_RECEIPT: "received",
                            tpb.ALERT_SOURCE_DISPENSE: "dispensed",
                            tpb.ALERT_SOURCE_SCAN: "scanned"}


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
class Raised:
    """An alert to store once: ``key`` says what "once" means (same code, rule and place)."""

    key: bytes
    alert: tpb.Alert


def diversion(code_key: bytes, code: str, *, source: int, at_ms: int, units: int,
              product: str, lot: str, region: int, party_id: str, rule: RegionRule,
              status: Status) -> Raised:
    """A pack seen outside the regions ``rule`` authorises."""
    seen = region_text(region)
    where = f"in {regions.display(seen)}"
    whose = "lot " + lot if rule.by == "batch" else "distributor " + rule.by
    action = _ACTIONS[source]
    by = f" by {party_id}" if party_id else ""
    alert = tpb.Alert(
        kind=vpb.ALERT_KIND_DIVERSION, source=source,  # type: ignore[arg-type]
        raised_at_ms=at_ms, code=code, units=units, product=product, lot=lot, region=seen,
        party_id=party_id, authorised_regions=rule.prefixes, authorised_by=rule.by,
        status=int(status),  # type: ignore[arg-type]
        detail=(f"{code} {action}{by} {where}, outside {', '.join(rule.prefixes)} authorised "
                f"for {whose}"),
    )
    # A scan is one fact per place; a receipt or dispensing is a custody event of its own.
    event = () if source == tpb.ALERT_SOURCE_SCAN else (party_id, at_ms)
    return Raised(_key(b"D", code_key, source, seen, rule.by, *event), alert)


def clone(code_key: bytes, code: str, reason: int, *, at_ms: int, product: str, lot: str,
          region: int, party_id: str, status: Status, scan_count: int,
          previous_region: int = 0, previous_at_ms: int = 0, distance_km: float = 0.0
          ) -> Raised:
    """A code seen where one physical pack cannot be."""
    seen = region_text(region)
    if reason == tpb.CLONE_REASON_TRAVEL:
        hours = (at_ms - previous_at_ms) / _MS_PER_HOUR
        detail = (f"{code} scanned in {seen} {hours * 60:.0f} min after a scan in "
                  f"{region_text(previous_region)}, {distance_km:,.0f} km away")
    elif reason == tpb.CLONE_REASON_SEEN_AFTER_END:
        detail = (f"{code} scanned by {party_id or 'the supply chain'} although it is "
                  f"{status.name}")
    else:
        detail = f"{code} verified {scan_count} times"
    alert = tpb.Alert(
        kind=vpb.ALERT_KIND_CLONE_SUSPECTED, source=tpb.ALERT_SOURCE_SCAN, raised_at_ms=at_ms,
        code=code, units=1, product=product, lot=lot, region=seen, party_id=party_id,
        clone_reason=reason,  # type: ignore[arg-type]
        previous_region=region_text(previous_region), previous_at_ms=previous_at_ms,
        distance_km=distance_km, scan_count=scan_count,
        status=int(status),  # type: ignore[arg-type]
        detail=detail,
    )
    # Once per code and reason; travel once per place seen, seen-after-end once per party.
    scope = seen if reason == tpb.CLONE_REASON_TRAVEL else (
        party_id if reason == tpb.CLONE_REASON_SEEN_AFTER_END else "")
    return Raised(_key(b"C", code_key, reason, scope), alert)


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

    def message(self) -> lpb.Recall:
        return lpb.Recall(when_ms=self.when_ms, reason=self.reason, who=self.who,
                          party_id=self.party_id, event_seq=self.event_seq)


@dataclass(slots=True)
class Location:
    """Where a batch's units are now, by holder, status and transit."""

    product: cpb.Product
    batch: cpb.Batch
    recall: RecallNote | None = None
    withdrawal: RecallNote | None = None
    holdings: list[Holding] = field(default_factory=list)

    def message(self) -> lpb.BatchLocation:
        """The API's picture: totals that partition the units, holders, provinces."""
        out = lpb.BatchLocation(
            product=self.batch.product, product_name=self.product.name, lot=self.batch.lot,
            expires_on=self.batch.expires_on,
        )
        if self.recall is not None:
            out.recall.CopyFrom(self.recall.message())
        if self.withdrawal is not None:
            out.withdrawal.CopyFrom(self.withdrawal.message())
        provinces: dict[str, lpb.RegionCount] = {}
        for h in sorted(self.holdings, key=_holding_order):
            party = h.party
            kind = party.kind if party is not None else cpb.PARTY_KIND_UNSPECIFIED
            out.units += h.units
            if h.status is Status.ACTIVE:
                if h.in_transit:
                    out.in_transit += h.units
                elif party is None or kind == cpb.PARTY_KIND_PLANT:
                    out.at_plant += h.units
                else:
                    out.in_stock += h.units
            elif h.status in DISPENSINGS:
                out.dispensed += h.units
            elif h.status in DECOMMISSIONED:
                out.other_decommissioned += h.units
            elif h.status in (Status.DESTROYED, Status.STOLEN):
                out.destroyed += h.units
            elif h.status is Status.VOIDED:
                out.voided += h.units
            out.holders.append(lpb.HolderCount(
                party_id=party.party_id if party else "", party_name=party.name if party else "",
                kind=kind, region=party.region if party else "",
                status=int(h.status),  # type: ignore[arg-type]
                in_transit=h.in_transit, units=h.units,
            ))
            if h.status is Status.VOIDED:
                continue
            province = party.region[:2] if party is not None and party.region else ""
            row = provinces.get(province)
            if row is None:
                row = provinces[province] = lpb.RegionCount(
                    region=province, name=regions.display(province) if province else "")
            if h.status is Status.ACTIVE:
                if h.in_transit:
                    row.in_transit += h.units
                else:
                    row.in_stock += h.units
            elif h.status in DISPENSINGS:
                row.dispensed += h.units
        out.regions.extend(r for _, r in sorted(provinces.items())
                           if r.in_stock or r.in_transit or r.dispensed)
        return out


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


def report_rows(products: Iterable[tuple[cpb.Product, dict[str, RegionFigures]]]
                ) -> list[tpb.RegionRow]:
    """Rows by product (in the given order), then region; regions with nothing to show left
    out."""
    rows: list[tpb.RegionRow] = []
    for product, by_region in products:
        for prefix in sorted(by_region, key=lambda p: (p == "", p)):
            figures = by_region[prefix]
            if not figures.any():
                continue
            rows.append(tpb.RegionRow(
                product=product.gtin or product.nmpa_id, product_name=product.name,
                region=prefix, region_name=regions.display(prefix) if prefix else "unknown",
                stock=figures.stock, recalled=figures.recalled, received=figures.received,
                sold=figures.sold, returned=figures.returned,
            ))
    return rows
