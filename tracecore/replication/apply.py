"""A replica's copy of a tenant's ledger: change records applied in order, each batch in one
transaction together with the position it reaches, so a replica killed at any point restarts
exactly after the last batch it applied.

The replica's verification workers open the same directory read-only, as on the writer.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tracecore.errors import FailedPrecondition
from tracecore.ledger.env import Env, Txn
from tracecore.ledger.store import DATABASES, DUPSORT
from tracecore.replication.capture import (
    APPLIED,
    OUTBOX,
    STATE,
    published_position,
    read_writer_state,
)
from tracecore.replication.changes import DELETE, PUT, Change

_APPLIED_AT = struct.Struct(">QQQQ")  # epoch, commit sequence, stream sequence, its time (ms)


@dataclass(frozen=True)
class Applied:
    """How far a replica's copy is."""

    epoch: int
    commit_seq: int
    stream_seq: int
    committed_at_ms: int


class Gap(FailedPrecondition):
    """A change is missing between the replica's position and the next record: the copy must
    start over from a snapshot."""


class ReplicaLedger:
    """The one writer of a replica's copy of a tenant's ledger."""

    def __init__(self, path: Path, tenant: str) -> None:
        self.env = Env(path, DATABASES, owner=tenant, dupsort=DUPSORT)
        self._state = self.env.open_db(STATE)
        self._outbox = self.env.open_db(OUTBOX)
        self._dupsort = frozenset(DUPSORT)

    def close(self) -> None:
        self.env.close()

    def applied(self) -> Applied:
        with self.env.read() as txn:
            return self._applied(txn)

    def published(self) -> Applied | None:
        """A writer's own ledger (fenced by a promotion) as a copy: the position its stream
        took it to, from which it follows on; None when it may hold a commit the stream never
        took, and must be replaced by a snapshot."""
        with self.env.read() as txn:
            position = published_position(txn, self._state)
        return None if position is None else Applied(*position, 0)

    def start_from_snapshot(self, stream_seq: int) -> Applied:
        """Marks a freshly restored snapshot as the starting point: the writer's position it
        holds, the stream sequence from which changes follow; its outbox is the writer's
        business and is emptied."""

        def fn(txn: Txn) -> Applied:
            epoch, seq = read_writer_state(txn, self._state)
            txn.drop(self._outbox, delete=False)
            applied = Applied(epoch, seq, stream_seq, 0)
            txn.put(APPLIED, _APPLIED_AT.pack(epoch, seq, stream_seq, 0), db=self._state)
            return applied

        return self.env.write(fn)

    def apply(self, changes: Sequence[tuple[Change, int]], stream_seq: int) -> Applied:
        """Applies ``changes`` (each with its stream sequence) in one transaction; records
        already applied are skipped; a record from another epoch or after a gap raises Gap.
        ``stream_seq`` is the last stream message consumed (it may be past the last change)."""
        dbs = self.env.dbs
        dupsort = self._dupsort

        def fn(txn: Txn) -> Applied:
            now = self._applied(txn)
            epoch, seq, at = now.epoch, now.commit_seq, now.committed_at_ms
            for change, _ in changes:
                if change.epoch != epoch:
                    raise Gap(f"change {change.epoch}:{change.seq} is from another epoch than "
                              f"the copy ({epoch})")
                if change.seq <= seq:
                    continue
                if change.seq != seq + 1:
                    raise Gap(f"changes {seq + 1}..{change.seq - 1} are missing")
                for kind, name, key, value in change.ops:
                    db = dbs[name]
                    if kind == PUT:
                        txn.put(key, value, db=db, dupdata=name in dupsort)
                    elif kind == DELETE:
                        txn.delete(key, value, db=db)
                seq, at = change.seq, change.committed_at_ms
            applied = Applied(epoch, seq, max(stream_seq, now.stream_seq), at)
            txn.put(APPLIED, _APPLIED_AT.pack(applied.epoch, applied.commit_seq,
                                               applied.stream_seq, applied.committed_at_ms),
                    db=self._state)
            return applied

        return self.env.write(fn)

    def _applied(self, txn: Txn) -> Applied:
        data = txn.get(APPLIED, db=self._state)
        if data is None:
            return Applied(0, 0, 0, 0)
        return Applied(*_APPLIED_AT.unpack(bytes(data)))


def lag_seconds(applied: Applied, now_ms: int | None = None) -> float:
    """Seconds since the writer committed the last change applied (0 before any)."""
    if not applied.committed_at_ms:
        return 0.0
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return max(0.0, (now - applied.committed_at_ms) / 1000)
