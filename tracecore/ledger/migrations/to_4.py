"""Format 3 -> 4: packs inside a container inherit its custody (``tracecore.ledger.contents``).

Every container gets the tally of what it holds at any depth (the ``contents`` database),
counted from the aggregation links and the code records. Ledgers written before kept every
pack's custody in its own record, set on each ship and receipt of its container; a pack packed
into a container held elsewhere kept its own until the container next moved. Such a pack now
has its top container's custody: its record is written with it, and the report counters move
with it, so that they stay equal to a recount with custody inherited.

One transaction: a kill leaves the ledger at format 3, untouched, and the step runs again. An
audit record (method ``pharmatrace.ledger/MigrateFormat``) dates the migration.
"""

from __future__ import annotations

from tracecore.credentials import OPERATOR
from tracecore.ledger import format as ledger_format
from tracecore.ledger.contents import MAX_DEPTH, inheriting, recount, write_rows
from tracecore.ledger.counters import Tally
from tracecore.ledger.env import Txn
from tracecore.ledger.migrations.to_3 import METHOD as METHOD  # the audit records' method
from tracecore.ledger.migrations.to_3 import recorded
from tracecore.ledger.oversight import RegionTally
from tracecore.ledger.records import CodeRecord
from tracecore.ledger.store import Ledger
from tracecore.lifecycle_rules import UNCOUNTED

VERSION = 4
SUMMARY = "packs inside a container inherit its custody: tally every container's contents"


def apply(ledger: Ledger, now_ms: int) -> bool:
    """Brings a format-3 ledger to format 4; False (and nothing written) when it already is."""

    def fn(txn: Txn) -> bool:
        if ledger_format.version_in(ledger, txn) >= VERSION:
            return False
        if ledger.tenant != OPERATOR:
            _inherit(ledger, txn)
            write_rows(txn, ledger.db["contents"], sorted(recount(ledger, txn).items()))
        recorded(ledger, txn, VERSION, now_ms)
        return True

    return ledger.env.write(fn)


def _inherit(ledger: Ledger, txn: Txn) -> None:
    """Writes their top container's custody into the records of packs that hold another,
    moving the counters with them."""
    codes = ledger.db["codes"]
    parents = {bytes(child): bytes(parent) for child, parent in txn.cursor(db=ledger.db["parents"])}
    tops: dict[bytes, CodeRecord | None] = {}
    tally, regions = Tally(), RegionTally()
    changed: list[tuple[bytes, bytes]] = []
    for child, parent in parents.items():
        top = parent
        for _ in range(MAX_DEPTH):
            above = parents.get(top)
            if above is None:
                break
            top = above
        if top not in tops:
            data = txn.get(top, db=codes)
            tops[top] = CodeRecord.unpack(data) if data is not None else None
        held = tops[top]
        data = txn.get(child, db=codes)
        if held is None or data is None:
            continue
        record = CodeRecord.unpack(data)
        after = inheriting(record, held)
        if after is record:
            continue
        if record.status not in UNCOUNTED:
            tally.move(record, after)
            regions.move(record, after)
        changed.append((child, after.pack()))
    if changed:
        txn.cursor(db=codes).putmulti(sorted(changed))
        tally.write(txn, ledger.db["counters"])
        regions.write(txn, ledger.db["batch_regions"])
