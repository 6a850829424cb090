"""Format 2 -> 3: the ledger keeps codes encrypted at rest (``tracecore.ledger.code_keys``).

Every key or value that is a code's ledger key is rewritten in its stored form (serial
encrypted, letter and product in clear): the code records, pool positions, aggregation links
both ways, batch contents, shipments in transit, codes minted elsewhere and the per-code event
index. Every event record and audit record (which says what a request asked for, codes
included) is sealed (AES-GCM) as it is; the chains' hashes are over the records themselves, so
the chains, their sealed heads and heads already handed to auditors stay valid. An audit record
(method ``pharmatrace.ledger/MigrateFormat``) dates the migration.

Several transactions of at most ``CHUNK`` entries, each recording in ``meta`` how far it got, so
a kill loses at most one chunk's work and the step resumes there. A database is rewritten in two
passes: its entries converted into a work database (the original left as it is, so the walk
over it stays in order), then the original emptied and the work database moved back into it.
The last transaction drops the work database and records format 3. Written without the
replication capture, so replicas start over from a snapshot of the new epoch, as after any
write made without it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.credentials import OPERATOR
from tracecore.ledger import format as ledger_format
from tracecore.ledger.access import MAX_SUMMARY, Access
from tracecore.ledger.code_keys import SINCE_FORMAT
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.records import seq_key, u64
from tracecore.ledger.store import DUPSORT, Ledger
from tracecore.version import release

VERSION = SINCE_FORMAT
SUMMARY = "encrypt codes at rest: serials in every code-keyed database, event records sealed"
METHOD = "pharmatrace.ledger/MigrateFormat"
#: Entries rewritten per transaction.
CHUNK = 20_000
#: Where a migration in progress records how far it got (``meta``).
PROGRESS = b"migrate:3:progress"
#: The work database; dropped at the end.
WORK = "migrate:3:work"
#: The databases holding codes' ledger keys: (name, its keys are codes, its values are codes).
TABLES: tuple[tuple[str, bool, bool], ...] = (
    ("codes", True, False),
    ("pool_codes", False, True),
    ("parents", True, True),
    ("children", True, True),
    ("batch_codes", False, True),
    ("shipments", True, False),
    ("foreign_codes", True, False),
    ("code_events", True, False),
)
#: The hash chains, sealed record by record after the tables.
CHAINS = ("events", "audit")
_OUT, _BACK, _SEAL = 0, 1, 2
_STATE = struct.Struct(">HB")


def apply(ledger: Ledger, now_ms: int, *, chunk: int = CHUNK,
          after_chunk: Callable[[], None] = lambda: None) -> bool:
    """Brings a format-2 ledger to format 3; False (and nothing written) when it already is.
    ``after_chunk`` runs after each committed transaction but the last (tests kill there)."""
    with ledger.env.read() as txn:
        if ledger_format.version_in(ledger, txn) >= VERSION:
            return False
    # The operator store holds no codes and keeps its audit trail in clear: only its format
    # changes.
    work = ledger.env.open_db(WORK)
    while ledger.tenant != OPERATOR and ledger.env.write(
            lambda txn: _step(ledger, txn, work, chunk)):
        after_chunk()

    def finish(txn: Txn) -> bool:
        if ledger_format.version_in(ledger, txn) >= VERSION:
            return False
        txn.drop(work, delete=True)
        txn.delete(PROGRESS, db=ledger.db["meta"])
        recorded(ledger, txn, VERSION, now_ms)
        return True

    done = ledger.env.write(finish)
    ledger.env.dbs.pop(WORK, None)  # dropped: its handle is no longer valid
    return done


def recorded(ledger: Ledger, txn: Txn, version: int, now_ms: int) -> None:
    """Records that a step brought the ledger to ``version``, and dates it in the audit trail
    as format 3 on keeps it (sealed)."""
    ledger_format.record(ledger, txn, version)
    summary = f"ledger format {version - 1} -> {version} by pharmatrace {release()}"
    Access(ledger).audit.append(txn, lpb.AuditRecord(
        at_ms=now_ms, peer="local", method=METHOD, summary=summary[:MAX_SUMMARY],
        status="OK"))


def _step(ledger: Ledger, txn: Txn, work: Database, chunk: int) -> bool:
    """One chunk of work from where the last one stopped; False when nothing is left."""
    meta = ledger.db["meta"]
    data = txn.get(PROGRESS, db=meta)
    table, phase, resume = (0, _OUT, b"") if data is None else (
        *_STATE.unpack_from(bytes(data)), bytes(data)[_STATE.size:])
    if table < len(TABLES):
        name, key_is_code, value_is_code = TABLES[table]
        db = ledger.db[name]
        dupsort = name in DUPSORT
        if phase == _OUT:
            done, last = _copy_out(ledger, txn, db, work, dupsort, key_is_code, value_is_code,
                                   resume, chunk)
            if done:
                txn.drop(db, delete=False)
                state = _STATE.pack(table, _BACK)
            else:
                state = _STATE.pack(table, _OUT) + last
        else:
            done = _move_back(txn, work, db, dupsort, chunk)
            state = _STATE.pack(table + 1, _OUT) if done else _STATE.pack(table, _BACK)
    elif table < len(TABLES) + len(CHAINS):
        start = u64(resume) + 1 if resume else 1
        last_seq = _seal(ledger, txn, CHAINS[table - len(TABLES)], start, chunk)
        state = (_STATE.pack(table + 1, _SEAL) if last_seq is None
                 else _STATE.pack(table, _SEAL) + seq_key(last_seq))
    else:
        return False
    txn.put(PROGRESS, state, db=meta)
    return True


def _copy_out(ledger: Ledger, txn: Txn, db: Database, work: Database, dupsort: bool,
              key_is_code: bool, value_is_code: bool, resume: bytes, chunk: int
              ) -> tuple[bool, bytes]:
    """Up to ``chunk`` entries after ``resume`` converted into the work database; (whether the
    table is done, the position to resume after)."""
    cursor = txn.cursor(db=db)
    if resume:
        # The original is not changed before the whole table is copied: the entry last copied
        # is still there.
        cut = resume[0] + 1
        found = (cursor.set_key_dup(resume[1:cut], resume[cut:]) if dupsort
                 else cursor.set_key(resume)) and cursor.next()
    else:
        found = cursor.first()
    stored = ledger.codes.stored
    out = txn.cursor(db=work)
    n = 0
    last = b""
    while found and n < chunk:
        key, value = bytes(cursor.key()), bytes(cursor.value())
        new_key = stored(key) if key_is_code else key
        new_value = stored(value) if value_is_code else value
        if dupsort:
            out.put(bytes([len(new_key)]) + new_key + new_value, b"")
            last = bytes([len(key)]) + key + value
        else:
            out.put(new_key, new_value)
            last = key
        n += 1
        found = cursor.next()
    return not found, last


def _move_back(txn: Txn, work: Database, db: Database, dupsort: bool, chunk: int) -> bool:
    """Moves up to ``chunk`` converted entries from the work database into the emptied one;
    whether the work database is empty."""
    cursor = txn.cursor(db=work)
    target = txn.cursor(db=db)
    n = 0
    while n < chunk and cursor.first():
        key, value = bytes(cursor.key()), bytes(cursor.value())
        if dupsort:
            cut = key[0] + 1
            target.put(key[1:cut], key[cut:], dupdata=True)
        else:
            target.put(key, value)
        cursor.delete()
        n += 1
    return not cursor.first()


def _seal(ledger: Ledger, txn: Txn, chain: str, start: int, chunk: int) -> int | None:
    """Seals up to ``chunk`` records of a chain from sequence ``start`` on, in place (their keys
    do not change); the last sequence sealed, or None when none was left."""
    cursor = txn.cursor(db=ledger.db[chain])
    if not cursor.set_range(seq_key(start)):
        return None
    seal = ledger.codes.seal
    last = None
    for _ in range(chunk):
        key = bytes(cursor.key())
        cursor.put(key, seal(bytes(cursor.value())))
        last = u64(key)
        if not cursor.next():
            break
    return last
