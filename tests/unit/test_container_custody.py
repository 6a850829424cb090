"""Containers changing hands on a real ledger: whatever sequence of ships, receipts, unpacking,
repacking, dispensing, undoing and destroying happens to a pallet of cases of units, every
pack's holder, place and transit flag (its own record's, or its top container's while it is
inside one) are what the events say, and the report counters, the containers' contents tallies
and where a batch is equal a brute-force recount."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pharmatrace.v1 import common_pb2 as cpb

from tests.ledgers import dev_codes
from tracecore.codes import Code, Scheme
from tracecore.events import Event, EventKind
from tracecore.ledger.contents import row_of, stored_rows
from tracecore.ledger.counters import Flow, Tally, flow_counts
from tracecore.ledger.env import Txn
from tracecore.ledger.foreign import merge, record_external
from tracecore.ledger.lifecycle import Request, Result, apply
from tracecore.ledger.oversight import RegionTally, batch_regions, locate
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord
from tracecore.ledger.store import Ledger, PoolRequest
from tracecore.lifecycle_rules import counted
from tracecore.status import Status

GTIN = "09501101530003"
#: LOCAL may be sold anywhere; NORTH only in Beijing (11), so receipts elsewhere divert it.
LOTS = {"LOCAL": (), "NORTH": ("11",)}
#: Party -> region ("" for a warehouse that records none).
PARTIES = {"PLANT": "110105", "DIST": "440305", "PHARM": "440106", "WH": ""}
T0 = int(dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC).timestamp() * 1000)
MINUTE = 60_000
UNIT, CASE, PALLET = 1, 3, 4


@dataclass
class _Pallet:
    """One pallet of cases of units on a fresh ledger, and what the events should have made of
    each pack (the model the ledger is compared with)."""

    ledger: Ledger
    pallet: Code
    cases: list[Code]
    units: list[list[Code]]
    lot_of: dict[Code, str]
    parent: dict[Code, Code] = field(default_factory=dict)
    holder: dict[Code, str] = field(default_factory=dict)
    in_transit: dict[Code, bool] = field(default_factory=dict)
    region: dict[Code, str] = field(default_factory=dict)
    status: dict[Code, Status] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)

    def every(self) -> list[Code]:
        return [self.pallet, *self.cases, *(u for case in self.units for u in case)]

    def inside(self, code: Code) -> list[Code]:
        """``code`` and everything it holds now."""
        out = [code]
        for child, parent in self.parent.items():
            if parent == code:
                out.extend(self.inside(child))
        return out


def _issue(ledger: Ledger, request_id: str, lot: str, level: int, n: int) -> list[Code]:
    ledger.open_pool(PoolRequest(request_id, GTIN, lot, level, n), 1, T0)
    serials = [f"{request_id.upper()}N{i:04d}" for i in range(n)]
    ledger.append_pool_codes(request_id, 0, serials, 1, T0, _no_redraw)
    return [Code(Scheme.GS1, GTIN, s) for s in serials]


def _no_redraw(n: int) -> list[str]:
    raise AssertionError("test serials never collide")


def _do(ledger: Ledger, kind: EventKind, codes: list[Code], at: int, **fields: object
        ) -> Result:
    event = Event(kind, tuple(codes), T0 + at * MINUTE, **fields)  # type: ignore[arg-type]
    return apply(ledger, [Request([event])], T0 + at * MINUTE)[0]


def _build(path: Path, lots: list[list[str]]) -> _Pallet:
    """A pallet at PLANT holding one case per entry of ``lots``, each holding one unit per lot
    named."""
    ledger = Ledger(path, tenant="test", codes=dev_codes("test"))
    ledger.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), T0)
    for lot, regions in LOTS.items():
        ledger.add_batch(cpb.Batch(product=GTIN, lot=lot, expires_on="2030-12-31",
                                   authorised_regions=list(regions)), T0)
    for party_id, region in PARTIES.items():
        ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region=region), T0)
    (pallet,) = _issue(ledger, "pallet", "LOCAL", PALLET, 1)
    # Cases of the Beijing-only lot: a diversion counts the units inside them, not the cases.
    cases = _issue(ledger, "cases", "NORTH", CASE, len(lots))
    units: list[list[Code]] = []
    lot_of: dict[Code, str] = {pallet: "LOCAL", **dict.fromkeys(cases, "NORTH")}
    for c, case_lots in enumerate(lots):
        mine = []
        for lot in LOTS:
            n = case_lots.count(lot)
            if n:
                codes = _issue(ledger, f"c{c}{lot.lower()}", lot, UNIT, n)
                lot_of.update(dict.fromkeys(codes, lot))
                mine.extend(codes)
        units.append(mine)
    model = _Pallet(ledger, pallet, cases, units, lot_of)
    for code in model.every():
        assert _do(ledger, EventKind.COMMISSION, [code], 0, party_id="PLANT",
                   lot=lot_of[code]).applied
    for case, mine in zip(cases, units, strict=True):
        assert _do(ledger, EventKind.AGGREGATE, mine, 0, parent=case, partial=True).applied
        model.parent.update(dict.fromkeys(mine, case))
    assert _do(ledger, EventKind.AGGREGATE, cases, 0, parent=pallet, partial=True).applied
    model.parent.update(dict.fromkeys(cases, pallet))
    for code in model.every():
        model.holder[code], model.in_transit[code] = "PLANT", False
        model.region[code], model.status[code] = PARTIES["PLANT"], Status.ACTIVE
    return model


# -- what each step does: its event, and what the model says the ledger must answer ------------

@dataclass(frozen=True)
class _Step:
    event: Event
    applied: bool
    diverted: int = 0
    """Units the receipt must report as diverted."""


def _event(kind: EventKind, code: Code, at: int, **fields: object) -> Event:
    return Event(kind, (code,), T0 + at * MINUTE, **fields)  # type: ignore[arg-type]


def _ship(m: _Pallet, code: Code, to: str, at: int) -> _Step:
    can = (code not in m.parent and m.status[code] is Status.ACTIVE
           and not m.in_transit[code] and m.holder[code] != to)
    step = _Step(_event(EventKind.SHIP, code, at, party_id=m.holder[code], destination=to), can)
    if can:
        for k in m.inside(code):
            m.holder[k], m.in_transit[k] = to, True
    return step


def _receive(m: _Pallet, code: Code, by: str, at: int) -> _Step:
    event = _event(EventKind.RECEIVE, code, at, party_id=by)
    if code in m.parent or not m.in_transit[code]:
        return _Step(event, False)
    region = PARTIES[by]
    north = 0
    for k in m.inside(code):
        m.holder[k], m.in_transit[k], m.region[k] = by, False, region
        if k not in (m.pallet, *m.cases):
            m.received[region] += 1
            north += m.lot_of[k] == "NORTH"
    # The Beijing-only lot's units received outside Beijing are reported, all of them.
    return _Step(event, True, north if region and not region.startswith("11") else 0)


def _unpack(m: _Pallet, case: Code, at: int) -> _Step:
    can = m.parent.get(case) == m.pallet
    if can:
        del m.parent[case]
    return _Step(_event(EventKind.DISAGGREGATE, case, at, parent=m.pallet), can)


def _repack(m: _Pallet, case: Code, at: int) -> _Step:
    top = m.pallet
    can = (case not in m.parent and m.status[case] is Status.ACTIVE
           and not m.in_transit[case] and top not in m.parent
           and m.status[top] is Status.ACTIVE and not m.in_transit[top])
    if can:
        m.parent[case] = top
        for k in m.inside(case):
            m.holder[k], m.in_transit[k], m.region[k] = (
                m.holder[top], m.in_transit[top], m.region[top])
    return _Step(_event(EventKind.AGGREGATE, case, at, parent=top, partial=True), can)


def _destroy(m: _Pallet, code: Code, at: int) -> _Step:
    can = code not in m.parent and m.status[code] in (Status.ACTIVE, Status.DISPENSED)
    if can:
        for k in m.inside(code):
            if m.status[k] in (Status.ACTIVE, Status.DISPENSED):
                m.status[k] = Status.DESTROYED
    return _Step(_event(EventKind.DESTROY, code, at), can)


def _undo(m: _Pallet, unit: Code, at: int) -> _Step:
    can = m.status[unit] is Status.DISPENSED
    if can:
        m.status[unit] = Status.ACTIVE
    return _Step(_event(EventKind.UNDO, unit, at, party_id=m.holder[unit]), can)


def _dispense(m: _Pallet, unit: Code, at: int) -> _Step:
    can = m.status[unit] is Status.ACTIVE and not m.in_transit[unit]
    step = _Step(_event(EventKind.DECOMMISSION, unit, at, party_id=m.holder[unit],
                        target=Status.DISPENSED), can)
    if can:
        m.status[unit] = Status.DISPENSED
        m.parent.pop(unit, None)
    return step


def _step(m: _Pallet, what: str, pick: int, party: str, at: int) -> _Step:
    containers = [m.pallet, *m.cases]
    if what == "ship":
        return _ship(m, containers[pick % len(containers)], party, at)
    if what == "receive":
        return _receive(m, containers[pick % len(containers)], party, at)
    if what == "unpack":
        return _unpack(m, m.cases[pick % len(m.cases)], at)
    if what == "repack":
        return _repack(m, m.cases[pick % len(m.cases)], at)
    if what == "destroy":
        return _destroy(m, m.every()[pick % len(m.every())], at)
    units = [u for case in m.units for u in case]
    if what == "undo":
        return _undo(m, units[pick % len(units)], at)
    return _dispense(m, units[pick % len(units)], at)


def _answered(steps: list[_Step], results: list[Result]) -> None:
    for step, result in zip(steps, results, strict=True):
        assert result.applied == step.applied, (step.event.kind, result)
        assert sum(r.alert.units for r in result.alerts) == step.diverted


# -- the brute-force recount ----------------------------------------------------------------------

def _walked(ledger: Ledger, txn: Txn, key: bytes) -> CodeRecord:
    """A pack's record with the custody of the top container found by walking its parents."""
    record = ledger.code_record(txn, key)
    assert record is not None
    top, parent = key, ledger.parent_of(txn, key)
    while parent is not None:
        top, parent = parent, ledger.parent_of(txn, parent)
    held = ledger.code_record(txn, top)
    assert held is not None
    return record._replace(holder_ref=held.holder_ref, region=held.region,
                           flags=(record.flags & ~FLAG_IN_TRANSIT)
                           | (held.flags & FLAG_IN_TRANSIT))


def _check(m: _Pallet) -> None:
    ledger = m.ledger
    refs = {party_id: ledger.party(party_id)[0] for party_id in PARTIES}
    with ledger.env.read() as txn:
        records = {code: _walked(ledger, txn, code.key()) for code in m.every()}
        for code in m.every():
            parent = ledger.parent_of(txn, code.key())
            assert parent == (m.parent[code].key() if code in m.parent else None), code
            # What each container holds at any depth, tallied, as counted one by one.
            inside = Counter(row_of(records[k]) for k in m.inside(code)[1:])
            assert stored_rows(txn, ledger.db["contents"],
                               ledger.codes.stored(code.key())) == dict(inside), code
        tally, regions = Tally(), RegionTally()
        for key, value in txn.cursor(db=ledger.db["codes"]):
            record = CodeRecord.unpack(value)
            record = _walked(ledger, txn, ledger.codes.plain(bytes(key)))
            if counted(record):
                tally.move(None, record)
            if record.status is not Status.ISSUED:
                regions.move(None, record)
        located = {lot: Counter({(h.party.party_id if h.party else "", h.status, h.in_transit):
                                 h.units for h in locate(ledger, txn, ref, batch).holdings})
                   for lot in LOTS for ref, batch in [ledger.batch_in(txn, GTIN, lot)]}
        stored = {bytes(k): v for k, v in txn.cursor(db=ledger.db["counters"])
                  if bytes(k)[:1] in (b"S", b"P")}
        stored_regions = {(ref, region, status): n
                          for lot in LOTS for ref in [ledger.batch(GTIN, lot)[0]]
                          for region, status, n in batch_regions(
                              txn, ledger.db["batch_regions"], ref)}
        flows = flow_counts(txn, ledger.db["counters"], 0, 2**32 - 1)
    where: dict[str, Counter[tuple[str, Status, bool]]] = {lot: Counter() for lot in LOTS}
    for code, record in records.items():
        if code not in (m.pallet, *m.cases):
            where[m.lot_of[code]][(m.holder[code], m.status[code], m.in_transit[code])] += 1
        assert record.holder_ref == refs[m.holder[code]], code
        assert record.in_transit == m.in_transit[code], code
        assert record.status is m.status[code], code
        assert (f"{record.region:06d}" if record.region else "") == m.region[code], code
    recounted = {k: v for k, v in tally.expand().items() if v}
    assert {k: int.from_bytes(v, "big", signed=True) for k, v in stored.items()} == recounted
    assert stored_regions == {k: n for k, n in regions.units.items() if n}
    received: Counter[str] = Counter()
    for _, _, region, flow, n in flows:
        if flow == Flow.RECEIVED:
            received[f"{region:06d}" if region else ""] += n
    assert received == +m.received
    assert located == where


_LOTS = st.lists(st.lists(st.sampled_from(sorted(LOTS)), min_size=1, max_size=4),
                 min_size=1, max_size=3)
_STEPS = st.lists(st.tuples(st.sampled_from(["ship", "receive", "unpack", "repack", "dispense",
                                             "undo", "destroy"]),
                            st.integers(0, 40), st.sampled_from(sorted(PARTIES))),
                  min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lots=_LOTS, steps=_STEPS, grouped=st.booleans())
def test_packs_and_counters_follow_their_containers_through_any_ships_and_receipts(
        lots: list[list[str]], steps: list[tuple[str, int, str]], grouped: bool) -> None:
    """After any ships, receipts, unpacking and dispensing of a pallet and its cases, one
    request at a time or all in one group commit, each pack has the holder, region, transit
    flag and status its events give it, each receipt reports the diverted units, and the
    location, region and flow counters equal a recount of the packs."""
    with tempfile.TemporaryDirectory() as tmp:
        m = _build(Path(tmp), lots)
        try:
            _check(m)
            if grouped:
                planned = [_step(m, *step, at=at) for at, step in enumerate(steps, 1)]
                now = T0 + (len(steps) + 1) * MINUTE
                _answered(planned, apply(m.ledger, [Request([p.event]) for p in planned], now))
            else:
                for at, step in enumerate(steps, 1):
                    planned = [_step(m, *step, at=at)]
                    _answered(planned, apply(m.ledger, [Request([planned[0].event])],
                                             T0 + at * MINUTE))
                    _check(m)
            _check(m)
        finally:
            m.ledger.close()


def test_merging_an_external_party_moves_its_packs_counters_and_batch_regions() -> None:
    """Packs a partner's unregistered location received (an external party, no region) go to
    the registered party it is merged into, with that party's region: the pallet, a case taken
    out of it and a unit dispensed there, and the report counters, contents tallies and
    where each batch is equal a recount afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        m = _build(Path(tmp), [["LOCAL", "NORTH"], ["NORTH", "NORTH"]])
        try:
            ledger = m.ledger
            ledger.env.write(lambda txn: record_external(
                ledger, txn, "EXT", identifier="urn:epc:id:sgln:0614141.00777.0",
                gln="0614141007770", told_by="partner", now_ms=T0))
            PARTIES["EXT"] = ""
            loose = m.cases[1]
            steps = [_unpack(m, loose, 1), _ship(m, m.pallet, "EXT", 2),
                     _ship(m, loose, "EXT", 2), _receive(m, m.pallet, "EXT", 3),
                     _receive(m, loose, "EXT", 3), _dispense(m, m.units[1][0], 4)]
            for at, step in enumerate(steps, 1):
                assert step.applied, step.event.kind
                _answered([step], apply(ledger, [Request([step.event])], T0 + at * MINUTE))
            target, moved = merge(ledger, "EXT", "PHARM")
            assert target.party_id == "PHARM" and moved == len(m.every())
            del PARTIES["EXT"]
            for code in m.every():
                m.holder[code], m.region[code] = "PHARM", PARTIES["PHARM"]
            _check(m)
        finally:
            PARTIES.pop("EXT", None)
            m.ledger.close()
