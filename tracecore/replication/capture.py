"""Change capture at the one place the ledger commits (``Env.write``): every put and delete of a
write transaction is recorded and stored, in that same transaction, as the next entry of an
outbox inside the ledger. A commit and its change record are therefore durable together; the
publisher sends the outbox in order and advances a cursor kept beside it, so a crash between
commit and publish loses nothing and a restart resumes at the cursor.

Capturing at commit rather than from the event journal replicates every change (master data,
pools, codes, credentials, the audit trail, counters), not only lifecycle events, and a replica
that applies the records holds the same bytes as the writer.

The outbox and the cursor live in two databases of their own (``OUTBOX``, ``STATE``), which are
never captured. Writes made while no capture is attached (the service run without replication,
a restore) are noticed by LMDB's transaction id: the next attach starts a new *epoch*, and
replicas then start over from a snapshot of that epoch.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from tracecore.ledger.env import Database, Env, Txn
from tracecore.ledger.records import seq_key, u64
from tracecore.replication.changes import DELETE, PUT, Change

T = TypeVar("T")

OUTBOX = "replication_outbox"  # commit sequence -> encoded Change, until published
STATE = "replication_state"    # the writer's and the replica's positions (see below)
_WRITER = b"writer"            # epoch, last commit sequence, LMDB transaction id of the last write
_PUBLISHED = b"published"      # last commit sequence the stream acknowledged, its stream sequence
#: A replica's position in its copy (``tracecore.replication.apply``): dropped when a writer
#: attaches, the copy being a writer's ledger from then on.
APPLIED = b"applied"
_STATE = struct.Struct(">QQQ")
_PUBLISHED_AT = struct.Struct(">QQ")

Op = tuple[int, str, bytes, bytes]


@dataclass(frozen=True)
class Position:
    """Where a ledger's change stream is."""

    epoch: int
    commit_seq: int      # last commit captured
    published_seq: int   # last commit the stream acknowledged
    stream_seq: int      # the stream's sequence of that commit's last part


class ChangeCapture:
    """Attached to a tenant's ledger ``Env``: records each write transaction into the outbox."""

    def __init__(self, env: Env, dupsort: Iterable[str] = ()) -> None:
        self.env = env
        self._names = {id(handle): name for name, handle in env.dbs.items()}
        self._dupsort = frozenset(dupsort)
        self._outbox = env.open_db(OUTBOX)
        self._state = env.open_db(STATE)
        self._listeners: list[Callable[[int], None]] = []
        self._lock = threading.Lock()
        with env.read() as txn:
            epoch, seq, txnid = self._writer_state(txn)
            was_copy = txn.get(APPLIED, db=self._state) is not None
        last = int(env.info()["last_txnid"])
        self._epoch, self._seq = epoch, seq
        self._started_epoch = txnid != last or epoch == 0
        if self._started_epoch:
            # Written without capture since the last captured commit (or never captured): what
            # replicas hold can no longer be brought up to date by changes alone.
            self._epoch = epoch + 1
        self._pending = seq
        env.capture = self
        if self._started_epoch or was_copy:
            env.write(self._forget_copy)  # stores the new epoch

    # -- what Env calls --------------------------------------------------------------------------

    def run(self, txn: Txn, fn: Callable[[Txn], T]) -> T:
        """Runs ``fn`` on a recording view of ``txn`` and adds its change record to the outbox."""
        recorder = _Recorder(txn, self._names, self._dupsort)
        result = fn(cast(Txn, recorder))
        seq = self._seq
        if recorder.ops:
            seq += 1
            change = Change(self._epoch, seq, int(time.time() * 1000), recorder.ops)
            txn.put(seq_key(seq), change.encode(), db=self._outbox, append=True)
        txn.put(_WRITER, _STATE.pack(self._epoch, seq, txn.id()), db=self._state)
        self._pending = seq
        return result

    def committed(self) -> None:
        self._seq = self._pending
        for listener in list(self._listeners):
            listener(self._seq)

    def aborted(self) -> None:
        self._pending = self._seq

    # -- what the publisher calls --------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def started_epoch(self) -> bool:
        """Whether this attach began a new epoch (a snapshot must precede its changes)."""
        return self._started_epoch

    @property
    def commit_seq(self) -> int:
        """The last commit captured (committed)."""
        return self._seq

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """``listener(commit_seq)`` after each commit, on the committing thread."""
        self._listeners.append(listener)

    def position(self) -> Position:
        with self.env.read() as txn:
            published, stream_seq = self._published(txn)
        return Position(self._epoch, self._seq, published, stream_seq)

    def pending(self, after: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Outbox entries after commit ``after``, in order, up to about ``max_bytes``."""
        out: list[tuple[int, bytes]] = []
        size = 0
        with self.env.read() as txn:
            cursor = txn.cursor(db=self._outbox)
            if not cursor.set_range(seq_key(after + 1)):
                return out
            for key, value in cursor:
                out.append((u64(key), bytes(value)))
                size += len(value)
                if size >= max_bytes:
                    break
        return out

    def mark_published(self, commit_seq: int, stream_seq: int) -> None:
        """Moves the cursor to ``commit_seq`` and drops the outbox entries up to it."""
        outbox, state = self._outbox, self._state

        def fn(txn: Txn) -> None:
            raw = txn.raw if isinstance(txn, _Recorder) else txn
            done, _ = self._published(raw)
            if commit_seq <= done:
                return
            cursor = raw.cursor(db=outbox)
            while cursor.first() and u64(cursor.key()) <= commit_seq:
                cursor.delete()
            raw.put(_PUBLISHED, _PUBLISHED_AT.pack(commit_seq, stream_seq), db=state)

        self.env.write(fn)

    def begin_epoch(self, epoch: int) -> None:
        """Starts epoch ``epoch`` (above every epoch already in the stream): the ledger was set
        back (restored) behind what the stream holds."""
        self._epoch = epoch
        self._started_epoch = True
        self.env.write(lambda txn: None)

    def detach(self) -> None:
        if self.env.capture is self:
            self.env.capture = None

    # -- helpers -------------------------------------------------------------------------------

    def _forget_copy(self, txn: Txn) -> None:
        raw = txn.raw if isinstance(txn, _Recorder) else txn
        raw.delete(APPLIED, db=self._state)

    def _writer_state(self, txn: Txn) -> tuple[int, int, int]:
        data = txn.get(_WRITER, db=self._state)
        if data is None:
            return 0, 0, -1
        epoch, seq, txnid = _STATE.unpack(bytes(data))
        return epoch, seq, txnid

    def _published(self, txn: Txn) -> tuple[int, int]:
        data = txn.get(_PUBLISHED, db=self._state)
        if data is None:
            return 0, 0
        published, stream_seq = _PUBLISHED_AT.unpack(bytes(data))
        return published, stream_seq


class _Recorder:
    """A write transaction that records what it changes; everything else goes to the real one."""

    def __init__(self, raw: Txn, names: dict[int, str], dupsort: frozenset[str]) -> None:
        self.raw = raw
        self.ops: list[Op] = []
        self._names = names
        self._dupsort = dupsort

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def put(self, key: bytes, value: bytes, dupdata: bool = True, overwrite: bool = True,
            append: bool = False, db: Database = None) -> bool:
        done = bool(self.raw.put(key, value, dupdata=dupdata, overwrite=overwrite,
                                 append=append, db=db))
        name = self._names.get(id(db))
        if done and name is not None:
            self.ops.append((PUT, name, bytes(key), bytes(value)))
        return done

    def replace(self, key: bytes, value: bytes, db: Database = None) -> Any:
        old = self.raw.replace(key, value, db=db)
        name = self._names.get(id(db))
        if name is not None:
            self.ops.append((PUT, name, bytes(key), bytes(value)))
        return old

    def delete(self, key: bytes, value: bytes = b"", db: Database = None) -> bool:
        done = bool(self.raw.delete(key, value, db=db))
        name = self._names.get(id(db))
        if done and name is not None:
            self.ops.append((DELETE, name, bytes(key), bytes(value)))
        return done

    def pop(self, key: bytes, db: Database = None) -> Any:
        old = self.raw.pop(key, db=db)
        name = self._names.get(id(db))
        if old is not None and name is not None:
            self.ops.append((DELETE, name, bytes(key), b""))
        return old

    def drop(self, db: Database, delete: bool = True) -> None:
        raise TypeError("dropping a database of a replicated ledger is not replicated")

    def cursor(self, db: Database = None) -> Any:
        return _RecordingCursor(self.raw.cursor(db=db), self._names.get(id(db)),
                                self._names.get(id(db)) in self._dupsort, self.ops)


class _RecordingCursor:
    """A cursor whose writes are recorded (reads go straight through)."""

    def __init__(self, raw: Any, name: str | None, dupsort: bool, ops: list[Op]) -> None:
        self.raw = raw
        self._name = name
        self._dupsort = dupsort
        self._ops = ops

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.raw)

    def __enter__(self) -> _RecordingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    def put(self, key: bytes, value: bytes, dupdata: bool = True, overwrite: bool = True,
            append: bool = False) -> bool:
        done = bool(self.raw.put(key, value, dupdata=dupdata, overwrite=overwrite,
                                 append=append))
        if done and self._name is not None:
            self._ops.append((PUT, self._name, bytes(key), bytes(value)))
        return done

    def putmulti(self, items: Iterable[tuple[bytes, bytes]], dupdata: bool = False,
                 overwrite: bool = True, append: bool = False) -> tuple[int, int]:
        pairs = [(bytes(k), bytes(v)) for k, v in items]
        consumed, added = self.raw.putmulti(pairs, dupdata=dupdata, overwrite=overwrite,
                                            append=append)
        if self._name is not None:
            if added != consumed and not overwrite and not self._dupsort:
                # Keys already there were left alone: record only what now holds our value.
                pairs = [(k, v) for k, v in pairs if self.raw.get(k) == v]
            self._ops.extend((PUT, self._name, k, v) for k, v in pairs)
        return consumed, added

    def replace(self, key: bytes, value: bytes) -> Any:
        old = self.raw.replace(key, value)
        if self._name is not None:
            self._ops.append((PUT, self._name, bytes(key), bytes(value)))
        return old

    def delete(self, dupdata: bool = False) -> bool:
        key, value = bytes(self.raw.key()), bytes(self.raw.value())
        done = bool(self.raw.delete(dupdata=dupdata))
        if done and self._name is not None:
            one = self._dupsort and not dupdata
            self._ops.append((DELETE, self._name, key, value if one else b""))
        return done

    def pop(self, key: bytes) -> Any:
        old = self.raw.pop(key)
        if old is not None and self._name is not None:
            self._ops.append((DELETE, self._name, bytes(key), b""))
        return old


def published_position(txn: Txn, state: Database) -> tuple[int, int, int] | None:
    """(epoch, last commit, stream sequence of its last part) of a writer's ledger that holds
    nothing but what its stream acknowledged: the last write was captured (none was made
    after its capture ended) and the last commit captured was published. None when it may
    hold a commit the stream never took (refused after a fence, or made uncaptured)."""
    data = txn.get(_WRITER, db=state)
    published = txn.get(_PUBLISHED, db=state)
    if data is None or published is None:
        return None
    epoch, seq, txnid = _STATE.unpack(bytes(data))
    done, stream_seq = _PUBLISHED_AT.unpack(bytes(published))
    if txnid != txn.id() or done != seq or not stream_seq:
        return None
    return epoch, seq, stream_seq


def read_writer_state(txn: Txn, state: Database) -> tuple[int, int]:
    """(epoch, last commit sequence) a ledger's writer had reached; (0, 0) if never captured."""
    data = txn.get(_WRITER, db=state)
    if data is None:
        return 0, 0
    epoch, seq, _ = _STATE.unpack(bytes(data))
    return epoch, seq
