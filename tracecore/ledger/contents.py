"""Inherited custody: a pack inside a container is where its top container is.

A code with a parent takes its holder, region and in-transit flag from the top container of
its chain (aggregation is at most a few levels deep). Shipping, receiving or handing over a
container writes the top record only; the custody fields stored in the records inside are not
kept while they are inside, and a pack that leaves its container (disaggregated, dispensed,
relabelled) has the custody it inherited written into its own record then.

The report counters (``tracecore.ledger.counters``, ``tracecore.ledger.oversight``) stay exact
through a tally per container, kept in the ``contents`` database: the packs below it at any
depth by (level, batch, product, status, flags other than custody) -> packs. A container's
custody change moves its tally's rows in the counters instead of its packs one by one.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from tracecore.ledger.counters import Projection, add_counts, counts_under
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.records import FLAG_IN_TRANSIT, CodeRecord
from tracecore.ledger.store import Ledger

#: (level, batch ref, product ref, status, flags without the custody ones): what a container's
#: tally counts its contents by.
Row = tuple[int, int, int, int, int]
_ROW = struct.Struct(">BIIBB")
#: The flags that are custody (inherited from the top container, not tallied).
CUSTODY_FLAGS = FLAG_IN_TRANSIT
#: Containers above a pack followed at most (packaging has five levels).
MAX_DEPTH = 8
_new = tuple.__new__


def row_of(record: CodeRecord) -> Row:
    """The tally row a pack of this record counts under."""
    return (record.level, record.batch_ref, record.product_ref, int(record.status),
            record.flags & ~CUSTODY_FLAGS)


def inheriting(record: CodeRecord, top: CodeRecord) -> CodeRecord:
    """``record`` with the custody of ``top``: its holder, region and in-transit flag."""
    if same_custody(record, top):
        return record
    (status, level, key_id, product, batch, pool, _, _, issued, updated, event, flags) = record
    return _new(CodeRecord, (status, level, key_id, product, batch, pool, top.holder_ref,
                             top.region, issued, updated, event,
                             (flags & ~CUSTODY_FLAGS) | (top.flags & CUSTODY_FLAGS)))


def same_custody(a: CodeRecord, b: CodeRecord) -> bool:
    return (a.holder_ref == b.holder_ref and a.region == b.region
            and a.flags & CUSTODY_FLAGS == b.flags & CUSTODY_FLAGS)


def custody_moves(rows: Mapping[Row, int], before: CodeRecord, after: CodeRecord
                  ) -> list[tuple[Projection, Projection, int]]:
    """The counter moves (``Tally.move_many``'s form) of the packs of ``rows`` going from the
    custody of ``before`` to that of ``after``."""
    if same_custody(before, after):
        return []
    b_holder, b_region, b_flags = before.holder_ref, before.region, before.flags & CUSTODY_FLAGS
    a_holder, a_region, a_flags = after.holder_ref, after.region, after.flags & CUSTODY_FLAGS
    return [((level, batch, b_holder, status, flags | b_flags, product, b_region),
             (level, batch, a_holder, status, flags | a_flags, product, a_region), n)
            for (level, batch, product, status, flags), n in rows.items() if n]


def _prefix(stored_key: bytes) -> bytes:
    return bytes((len(stored_key),)) + stored_key


def stored_rows(txn: Txn, db: Database, stored_key: bytes) -> dict[Row, int]:
    """The tally stored for the container whose stored code key is ``stored_key``."""
    prefix = _prefix(stored_key)
    start = len(prefix)
    return {_ROW.unpack(key[start:]): n for key, n in counts_under(txn, db, prefix)}


def write_rows(txn: Txn, db: Database, deltas: Iterable[tuple[bytes, Mapping[Row, int]]]
               ) -> None:
    """Adds each (stored container key, {row: delta}) to the stored tallies."""
    add_counts(txn, db, ((_prefix(stored) + _ROW.pack(*row), n)
                         for stored, rows in deltas for row, n in rows.items() if n))


class ContentsDelta:
    """Changes to containers' tallies not yet written."""

    def __init__(self) -> None:
        self.rows: dict[bytes, Counter[Row]] = {}

    def add(self, containers: Iterable[bytes], rows: Mapping[Row, int], sign: int) -> None:
        """Adds ``rows`` (times ``sign``) to each container's tally."""
        for container in containers:
            tally = self.rows.get(container)
            if tally is None:
                tally = self.rows[container] = Counter()
            for row, n in rows.items():
                tally[row] += sign * n

    def merge_into(self, target: ContentsDelta) -> None:
        for container, rows in self.rows.items():
            target.add((container,), rows, 1)

    def write(self, txn: Txn, db: Database, stored: Callable[[bytes], bytes]) -> None:
        add_rows = sorted((stored(container), rows) for container, rows in self.rows.items())
        write_rows(txn, db, add_rows)


def top_record(ledger: Ledger, txn: Txn, stored_key: bytes) -> CodeRecord | None:
    """The record of the top container of the chain the pack whose stored code key is
    ``stored_key`` is in; None when it is in none. Walked by stored keys: nothing decrypted."""
    parents = ledger.db["parents"]
    top = None
    for _ in range(MAX_DEPTH):
        parent = txn.get(stored_key, db=parents)
        if parent is None:
            break
        top = stored_key = bytes(parent)
    data = txn.get(top, db=ledger.db["codes"]) if top is not None else None
    return CodeRecord.unpack(data) if data is not None else None


def resolved(ledger: Ledger, txn: Txn, key: bytes, record: CodeRecord) -> CodeRecord:
    """The read side's custody of a pack: ``record`` with its top container's custody."""
    held = top_record(ledger, txn, ledger.codes.stored(key))
    return record if held is None else inheriting(record, held)


def recount(ledger: Ledger, txn: Txn) -> dict[bytes, Counter[Row]]:
    """Every container's tally counted from the aggregation links and the code records, by
    stored container key: one pass over the links (what ``doctor`` and the format step use)."""
    parents = {bytes(child): bytes(parent)
               for child, parent in txn.cursor(db=ledger.db["parents"])}
    codes = ledger.db["codes"]
    out: dict[bytes, Counter[Row]] = {}
    for child, parent in parents.items():
        data = txn.get(child, db=codes)
        if data is None:
            continue
        row = row_of(CodeRecord.unpack(data))
        up: bytes | None = parent
        for _ in range(MAX_DEPTH):
            if up is None:
                break
            tally = out.get(up)
            if tally is None:
                tally = out[up] = Counter()
            tally[row] += 1
            up = parents.get(up)
    return out


def stored_all(txn: Txn, db: Database) -> dict[bytes, dict[Row, int]]:
    """Every stored tally, by stored container key."""
    out: dict[bytes, dict[Row, int]] = {}
    for key, n in counts_under(txn, db, b""):
        size = key[0]
        out.setdefault(key[1:1 + size], {})[_ROW.unpack(key[1 + size:])] = n
    return out
