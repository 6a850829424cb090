"""A lifecycle test's world: one tenant's ledger in a temporary directory with a product, two
batches and parties, and the calls the lifecycle tests make on it."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from pharmatrace.v1 import common_pb2 as cpb

from tests.ledgers import dev_codes
from tracecore.codes import Code, Scheme
from tracecore.events import Event, EventKind
from tracecore.ledger.contents import resolved
from tracecore.ledger.counters import Flow, batch_counts, flow_counts, product_counts
from tracecore.ledger.journal import Journal
from tracecore.ledger.lifecycle import Request, Result, apply
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord
from tracecore.ledger.store import Ledger, PoolRequest
from tracecore.status import DECOMMISSIONED, Status

GTIN = "09501101530003"
LOT = "LOT-A1"
#: A batch that expires on 2026-03-05, a few days after T0.
SHORT_LOT = "LOT-SHORT"
DAY = 86_400_000
#: 2026-03-01 08:00 UTC: the time every test starts at.
T0 = int(dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC).timestamp() * 1000)
UNIT, BUNDLE, CASE, PALLET = 1, 2, 3, 4
PARTIES = {"PLANT": "110105", "DIST": "440305", "PHARM": "440106", "PHARM-2": "440106"}
K = EventKind
S = Status




class World:
    """One tenant's ledger in a temporary directory, with a product, two batches and parties."""

    def __init__(self, path: Path) -> None:
        self.ledger = Ledger(path / "ledger", tenant="test", codes=dev_codes("test"))
        self._pools = itertools.count(1)
        ledger = self.ledger
        ledger.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2030-12-31"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=SHORT_LOT, expires_on="2026-03-05"), T0)
        for party_id, region in PARTIES.items():
            ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region=region), T0)

    # -- making codes ---------------------------------------------------------------------------

    def issued(self, n: int, level: int = UNIT, lot: str = LOT) -> list[Code]:
        """``n`` new codes of one pool, ISSUED."""
        pool = next(self._pools)
        request_id = f"pool-{pool}"
        self.ledger.open_pool(PoolRequest(request_id, GTIN, lot, level, n), 1, T0)
        serials = [f"P{pool:03d}L{level}N{i:05d}" for i in range(n)]
        self.ledger.append_pool_codes(request_id, 0, serials, 1, T0, no_redraw)
        return [Code(Scheme.GS1, GTIN, serial) for serial in serials]

    def active(self, n: int, level: int = UNIT, party: str = "PLANT", lot: str = LOT
               ) -> list[Code]:
        """``n`` new codes commissioned at ``party``."""
        codes = self.issued(n, level, lot)
        self.ok(K.COMMISSION, codes, party_id=party)
        return codes

    def in_status(self, status: Status, party: str = "PHARM") -> Code:
        """A new unit pack in ``status``, reached through the events that lead there."""
        (code,) = self.issued(1)
        if status is S.ISSUED:
            return code
        if status is S.VOIDED:
            self.ok(K.VOID, [code])
            return code
        self.ok(K.COMMISSION, [code], party_id=party)
        if status in DECOMMISSIONED:
            self.ok(K.DECOMMISSION, [code], party_id=party, target=status)
        elif status is S.DESTROYED:
            self.ok(K.DESTROY, [code], party_id=party)
        elif status is S.STOLEN:
            self.ok(K.REPORT_STOLEN, [code], party_id=party)
        elif status in (S.RECALLED, S.WITHDRAWN):
            self.force(code, status=status)
        return code

    def force(self, code: Code, **changes: Any) -> None:
        """Rewrites a code record directly: for states no event here can reach yet (recall)."""
        record = self.record(code).evolve(**changes)
        self.ledger.env.write(
            lambda txn: txn.put(self.ledger.codes.stored(code.key()), record.pack(),
                                db=self.ledger.db["codes"]))

    # -- applying events ------------------------------------------------------------------------

    def apply(self, *requests: Request, now_ms: int = T0) -> list[Result]:
        return apply(self.ledger, list(requests), now_ms)

    def do(self, kind: EventKind, codes: list[Code], *, when_ms: int = T0,
           best_effort: bool = False, now_ms: int | None = None, **fields: Any) -> Result:
        """One request of one event, recorded at ``now_ms`` (default: the event's own time)."""
        event = Event(kind, tuple(codes), when_ms, **fields)
        return self.apply(Request([event], best_effort),
                          now_ms=when_ms if now_ms is None else now_ms)[0]

    def ok(self, kind: EventKind, codes: list[Code], **fields: Any) -> Result:
        """``do``, expecting every code to be applied."""
        result = self.do(kind, codes, **fields)
        assert result.applied and not result.failures, result
        return result

    # -- reading the ledger ---------------------------------------------------------------------

    def record(self, code: Code) -> CodeRecord:
        """A pack's record as the ledger answers it: inside a container, with its top
        container's custody."""
        with self.ledger.env.read() as txn:
            record = self.ledger.code_record(txn, code.key())
            assert record is not None
            return resolved(self.ledger, txn, code.key(), record)

    def raw(self, *codes: Code) -> list[bytes]:
        with self.ledger.env.read() as txn:
            stored = [self.ledger.code_data(txn, c.key()) for c in codes]
        assert all(s is not None for s in stored)
        return [bytes(s) for s in stored if s is not None]

    def status(self, code: Code) -> Status:
        return self.record(code).status

    def holder(self, code: Code) -> str:
        ref = self.record(code).holder_ref
        with self.ledger.env.read() as txn:
            return self.ledger.party_by_ref(txn, ref).party_id if ref else ""

    def parent(self, code: Code) -> Code | None:
        with self.ledger.env.read() as txn:
            parent = self.ledger.parent_of(txn, code.key())
            return Code.from_key(parent) if parent is not None else None

    def children(self, code: Code) -> set[Code]:
        with self.ledger.env.read() as txn:
            return {Code.from_key(k) for k in self.ledger.children_of(txn, code.key())[0]}

    def journal_length(self) -> int:
        with self.ledger.env.read() as txn:
            return Journal(self.ledger).head(txn)[0]

    def journal(self) -> list[Any]:
        with self.ledger.env.read() as txn:
            return list(Journal(self.ledger).scan(txn))

    def batch_ref(self, lot: str = LOT) -> int:
        return self.ledger.batch(GTIN, lot)[0]

    def party_ref(self, party_id: str) -> int:
        return self.ledger.party(party_id)[0]

    def batch_counts(self, lot: str = LOT) -> dict[tuple[str, Status, bool], int]:
        """(holder, status, in transit) -> units of the batch, from the counters."""
        with self.ledger.env.read() as txn:
            rows = batch_counts(txn, self.ledger.db["counters"], self.batch_ref(lot))
            names = {ref: self.ledger.party_by_ref(txn, ref).party_id
                     for ref, *_ in rows if ref}
        return {(names.get(holder, ""), Status(status), bool(flags & FLAG_IN_TRANSIT)): n
                for holder, status, flags, n in rows}

    def product_counts(self) -> dict[tuple[str, Status], int]:
        """(region, status) -> units of the product, from the counters."""
        product_ref = self.ledger.product(GTIN)[0]
        with self.ledger.env.read() as txn:
            rows = product_counts(txn, self.ledger.db["counters"], product_ref)
        return {(f"{region:06d}" if region else "", Status(status)): n
                for region, status, n in rows}

    def flow_counts(self) -> dict[tuple[int, str, Flow], int]:
        """(day, region, flow) -> units, from the counters."""
        with self.ledger.env.read() as txn:
            rows = flow_counts(txn, self.ledger.db["counters"], 0, 2**32 - 1)
        return {(day, f"{region:06d}", Flow(flow)): n for day, _, region, flow, n in rows}


def no_redraw(n: int) -> list[str]:
    raise AssertionError("test serials never collide")




def reasons(result: Result) -> str:
    return " | ".join(f.reason for f in result.failures)


def dispensed_at_pharmacy(world: World, target: Status = S.DISPENSED, lot: str = LOT) -> Code:
    """A unit received by PHARM and decommissioned there at T0."""
    (code,) = world.active(1, party="PLANT", lot=lot)
    world.ok(K.SHIP, [code], party_id="PLANT", destination="PHARM", when_ms=T0 - 2 * DAY)
    world.ok(K.RECEIVE, [code], party_id="PHARM", when_ms=T0 - DAY)
    world.ok(K.DECOMMISSION, [code], party_id="PHARM", target=target, when_ms=T0)
    return code
