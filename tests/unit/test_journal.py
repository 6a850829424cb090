"""The event journal: every applied event is recorded, numbered and hash-chained, and any change
made to a stored event behind the ledger's back is found and named by its sequence number."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tests.ledgers import dev_codes
from tracecore.codes import Code, Scheme
from tracecore.events import Event, EventKind
from tracecore.ledger.journal import Journal
from tracecore.ledger.lifecycle import Request, apply
from tracecore.ledger.records import seq_key
from tracecore.ledger.store import DATABASES, Ledger, PoolRequest

GTIN = "09501101530003"
LOT = "LOT-A1"
T0 = 1_772_352_000_000  # 2026-03-01 08:00 UTC
DAY_MS = 86_400_000
#: Events in the journals these tests build.
EVENTS = 120


class _Journalled:
    """A ledger in a temporary directory whose journal holds ``EVENTS`` events: one commission
    per code, applied as one group, plus a ship and a receive of each of the first ten codes."""

    def __init__(self, path: Path) -> None:
        self.path = path / "ledger"
        self.ledger = Ledger(self.path, tenant="test", codes=dev_codes("test"))
        ledger = self.ledger
        ledger.register_product(cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), T0)
        ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2030-12-31"), T0)
        for party_id in ("PLANT", "DIST"):
            ledger.add_party(cpb.Party(party_id=party_id, name=party_id, region="110105"), T0)
        n = EVENTS - 20
        ledger.open_pool(PoolRequest("pool-1", GTIN, LOT, 1, n), 1, T0)
        serials = [f"SERIAL{i:05d}" for i in range(n)]
        ledger.append_pool_codes("pool-1", 0, serials, 1, T0, lambda _: [])
        self.codes = [Code(Scheme.GS1, GTIN, s) for s in serials]
        apply(ledger, [Request([Event(EventKind.COMMISSION, (c,), T0 + i, party_id="PLANT")],
                               who="line-1")
                       for i, c in enumerate(self.codes)], T0 + n)
        for i, code in enumerate(self.codes[:10]):
            apply(ledger, [Request([Event(EventKind.SHIP, (code,), T0 + DAY_MS + i,
                                          party_id="PLANT", destination="DIST")])], T0 + DAY_MS)
            apply(ledger, [Request([Event(EventKind.RECEIVE, (code,), T0 + 2 * DAY_MS + i,
                                          party_id="DIST", tz_offset="+08:00",
                                          event_id=f"receipt-{i}")])], T0 + 2 * DAY_MS)

    def verify(self) -> tuple[int, int | None]:
        with self.ledger.env.read() as txn:
            return Journal(self.ledger).verify(txn)

    def get(self, seq: int) -> lpb.EventRecord:
        with self.ledger.env.read() as txn:
            return Journal(self.ledger).get(txn, seq)

    def tamper(self, change: Callable[[lmdb.Transaction, lmdb._Database], object]) -> None:
        """Closes the ledger, changes its events database with plain lmdb, and opens it again:
        what someone with file access, not the service, would do."""
        self.ledger.close()
        env = lmdb.open(str(self.path), max_dbs=len(DATABASES) + 1)
        try:
            with env.begin(write=True) as txn:
                change(txn, env.open_db(b"events", txn=txn))
        finally:
            env.close()
        self.ledger = Ledger(self.path, tenant="test", codes=dev_codes("test"))



@pytest.fixture
def _journalled(tmp_path: Path) -> Iterator[_Journalled]:
    journalled = _Journalled(tmp_path)
    yield journalled
    journalled.ledger.close()


def _replace_value(seq: int, edit: Callable[[bytes], bytes]
                   ) -> Callable[[lmdb.Transaction, lmdb._Database], None]:
    """Edits event ``seq`` as someone holding the key-encryption key would: the record opened,
    changed and sealed again (without the key, any change fails to open)."""
    keys = dev_codes("test")

    def change(txn: lmdb.Transaction, events: lmdb._Database) -> None:
        stored = txn.get(seq_key(seq), db=events)
        assert stored is not None
        value = keys.open(bytes(stored))
        edited = edit(value)
        assert edited != value
        txn.put(seq_key(seq), keys.seal(edited), db=events)

    return change


def test_an_untouched_journal_verifies_over_every_event(_journalled: _Journalled) -> None:
    """After many group commits the chain holds: every event checked, none bad."""
    assert _journalled.verify() == (EVENTS, None)


def test_an_empty_journal_verifies(tmp_path: Path) -> None:
    """A new ledger's journal has nothing to check and nothing wrong."""
    ledger = Ledger(tmp_path / "ledger", tenant="test", codes=dev_codes("test"))
    try:
        with ledger.env.read() as txn:
            assert Journal(ledger).verify(txn) == (0, None)
    finally:
        ledger.close()


def test_events_are_numbered_without_gaps_and_each_links_to_the_one_before(
    _journalled: _Journalled,
) -> None:
    """Sequence numbers run 1..N and each event carries the hash of its predecessor."""
    with _journalled.ledger.env.read() as txn:
        records = list(Journal(_journalled.ledger).scan(txn))
    assert [r.seq for r in records] == list(range(1, EVENTS + 1))
    assert records[0].prev_hash == bytes(32)
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert len({r.hash for r in records}) == EVENTS


def test_each_event_records_what_when_where_and_who(_journalled: _Journalled) -> None:
    """A stored receipt says its kind, the pack, event and recording times, time zone, party,
    and event id; a commission says which caller recorded it."""
    commission = _journalled.get(1)
    assert (commission.kind, list(commission.codes), commission.who) == (
        "commission", [_journalled.codes[0].key()], "line-1")
    receipt = _journalled.get(EVENTS)
    assert receipt.kind == "receive"
    assert list(receipt.codes) == [_journalled.codes[9].key()]
    assert (receipt.when_ms, receipt.recorded_at_ms) == (T0 + 2 * DAY_MS + 9, T0 + 2 * DAY_MS)
    assert (receipt.tz_offset, receipt.party_id, receipt.event_id) == (
        "+08:00", "DIST", "receipt-9")


def test_events_are_found_by_code_and_by_event_id(_journalled: _Journalled) -> None:
    """The journal lists a pack's events in order and finds an event by its EPCIS id."""
    with _journalled.ledger.env.read() as txn:
        journal = Journal(_journalled.ledger)
        seqs = journal.seqs_of(txn, _journalled.codes[3].key())
        kinds = [journal.get(txn, s).kind for s in seqs]
        receipt = journal.seq_of_event_id(txn, "receipt-3")
        assert journal.seq_of_event_id(txn, "receipt-404") is None
    assert kinds == ["commission", "ship", "receive"]
    assert receipt == seqs[-1]


def test_a_changed_character_in_a_stored_event_is_named_by_its_sequence(
    _journalled: _Journalled,
) -> None:
    """Rewriting the party of event 57 (PLANT -> PLANX) makes verify point at event 57."""
    _journalled.tamper(_replace_value(57, lambda v: v.replace(b"PLANT", b"PLANX")))
    assert _journalled.verify() == (56, 57)


@pytest.mark.parametrize("offset", [0, 1, 10, -1], ids=["tag", "length", "body", "last-byte"])
def test_any_flipped_byte_in_a_stored_event_is_named_by_its_sequence(
    _journalled: _Journalled, offset: int
) -> None:
    """One byte of event 90 flipped, wherever it is (even if the record no longer decodes),
    makes verify point at event 90."""

    def flip(value: bytes) -> bytes:
        i = offset % len(value)
        return value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1:]

    _journalled.tamper(_replace_value(90, flip))
    assert _journalled.verify() == (89, 90)


def test_a_deleted_event_is_named_by_its_sequence(_journalled: _Journalled) -> None:
    """Removing event 33 makes verify point at 33, the first number missing."""
    _journalled.tamper(lambda txn, events: txn.delete(seq_key(33), db=events))
    assert _journalled.verify() == (32, 33)


def test_a_deleted_last_event_is_found_through_the_journal_head(_journalled: _Journalled) -> None:
    """Removing the newest event, which no later event links to, is still found and named."""
    _journalled.tamper(lambda txn, events: txn.delete(seq_key(EVENTS), db=events))
    assert _journalled.verify() == (EVENTS - 1, EVENTS)


def test_an_event_rewritten_with_a_fresh_hash_breaks_the_link_of_the_next(
    _journalled: _Journalled,
) -> None:
    """Someone who edits event 40 and recomputes its hash is caught at event 41."""

    def rewrite(value: bytes) -> bytes:
        record = lpb.EventRecord.FromString(value)
        record.party_id = "ELSEWHERE"
        # As ledger.proto documents it: SHA-256 of prev_hash + the record with hash empty.
        record.ClearField("hash")
        record.hash = hashlib.sha256(
            record.prev_hash + record.SerializeToString(deterministic=True)).digest()
        return record.SerializeToString(deterministic=True)

    _journalled.tamper(_replace_value(40, rewrite))
    assert _journalled.verify() == (40, 41)


def test_two_swapped_events_are_named_at_the_first_of_them(_journalled: _Journalled) -> None:
    """Exchanging the stored values of events 10 and 11 makes verify point at 10."""

    def swap(txn: lmdb.Transaction, events: lmdb._Database) -> None:
        ten, eleven = (txn.get(seq_key(seq), db=events) for seq in (10, 11))
        assert ten is not None and eleven is not None
        txn.put(seq_key(10), bytes(eleven), db=events)
        txn.put(seq_key(11), bytes(ten), db=events)

    _journalled.tamper(swap)
    assert _journalled.verify() == (9, 10)
