"""Change capture at commit: a copy that applies the outbox in order holds the writer's bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pharmatrace.v1 import common_pb2 as pb

from tests.ledgers import dev_codes
from tracecore.errors import AlreadyExists
from tracecore.ledger.store import DATABASES, Ledger, PoolRequest
from tracecore.replication.apply import Applied, Gap, ReplicaLedger
from tracecore.replication.capture import ChangeCapture
from tracecore.replication.changes import Change

GTIN = "09501101530003"


def _contents(env_path: Path, tenant: str) -> dict[str, list[tuple[bytes, bytes]]]:
    ledger = Ledger(env_path, tenant=tenant, codes=dev_codes(tenant), readonly=True)
    try:
        with ledger.env.read() as txn:
            return {name: [(bytes(k), bytes(v)) for k, v in txn.cursor(db=ledger.db[name])]
                    for name in DATABASES}
    finally:
        ledger.close()


def _write_some(ledger: Ledger) -> None:
    ledger.register_product(pb.Product(gtin=GTIN, name="Amoxicillin 500 mg"), 1)
    ledger.add_batch(pb.Batch(product=GTIN, lot="L1", expires_on="2030-01-31"), 2)
    with pytest.raises(AlreadyExists):  # a refused write changes nothing and is not captured
        ledger.register_product(pb.Product(gtin=GTIN, name="again"), 3)
    ledger.open_pool(PoolRequest("R1", GTIN, "L1", 1, 50), key_id=1, now_ms=4)
    serials = [f"S{i:08d}" for i in range(50)]
    ledger.append_pool_codes("R1", 0, serials, 1, 5, lambda n: [f"X{i}" for i in range(n)])


def test_a_copy_applying_the_outbox_holds_every_byte_of_the_writer(tmp_path: Path) -> None:
    """Master data, pools and codes (none of them journaled as events) reach the copy: every
    named database of the copy equals the writer's after applying the outbox."""
    ledger = Ledger(tmp_path / "writer", tenant="t1", codes=dev_codes("t1"))
    capture = ChangeCapture(ledger.env)
    (tmp_path / "copy").mkdir()
    ledger.env.copy_to(tmp_path / "copy")
    _write_some(ledger)
    records = [Change.decode(data) for _, data in capture.pending(0, 1 << 30)]
    assert [c.seq for c in records] == [1, 2, 3, 4]  # the refused write made no record
    assert capture.commit_seq == 4
    ledger.close()

    replica = ReplicaLedger(tmp_path / "copy", "t1")
    replica.start_from_snapshot(stream_seq=0)
    applied = replica.apply([(c, i + 1) for i, c in enumerate(records)], len(records))
    replica.apply([(c, i + 1) for i, c in enumerate(records)], len(records))  # again: no-op
    replica.close()
    assert applied.commit_seq == 4
    assert _contents(tmp_path / "copy", "t1") == _contents(tmp_path / "writer", "t1")


def test_a_missing_change_or_a_new_epoch_stops_the_copy(tmp_path: Path) -> None:
    """A copy never skips a change: a gap, or writes made without capture (a new epoch),
    make it refuse the records so it starts over from a snapshot."""
    ledger = Ledger(tmp_path / "writer", tenant="t1", codes=dev_codes("t1"))
    capture = ChangeCapture(ledger.env)
    (tmp_path / "copy").mkdir()
    ledger.env.copy_to(tmp_path / "copy")
    _write_some(ledger)
    records = [Change.decode(data) for _, data in capture.pending(0, 1 << 30)]
    capture.detach()
    ledger.add_party(pb.Party(party_id="P1", name="Pharmacy"), 6)  # not captured
    again = ChangeCapture(ledger.env)
    assert again.started_epoch and again.epoch == capture.epoch + 1
    ledger.close()

    replica = ReplicaLedger(tmp_path / "copy", "t1")
    replica.start_from_snapshot(stream_seq=0)
    with pytest.raises(Gap):
        replica.apply([(records[1], 2)], 2)
    replica.apply([(records[0], 1)], 1)
    assert replica.applied().commit_seq == records[0].seq
    replica.close()


def test_published_changes_leave_the_outbox_and_the_cursor_survives_reopening(tmp_path: Path
                                                                              ) -> None:
    """What the stream acknowledged is dropped from the outbox; after a restart the cursor
    is where it was and only the rest is pending, with no new epoch."""
    ledger = Ledger(tmp_path / "writer", tenant="t1", codes=dev_codes("t1"))
    capture = ChangeCapture(ledger.env)
    _write_some(ledger)
    capture.mark_published(2, stream_seq=7)
    epoch = capture.epoch
    ledger.close()
    ledger = Ledger(tmp_path / "writer", tenant="t1", codes=dev_codes("t1"))
    reopened = ChangeCapture(ledger.env)
    position = reopened.position()
    assert not reopened.started_epoch and position.epoch == epoch
    assert (position.published_seq, position.stream_seq, position.commit_seq) == (2, 7, 4)
    assert [seq for seq, _ in reopened.pending(position.published_seq, 1 << 30)] == [3, 4]
    ledger.close()


def _fenced(tmp_path: Path, last_write: str) -> Applied | None:
    """A writer's ledger whose stream took commits 1-4 (its last part at stream sequence 9),
    then ``last_write``: nothing, a commit the stream never took, or a write made once its
    capture was detached; what the copy made of it says it follows on from."""
    ledger = Ledger(tmp_path / "writer", tenant="t1", codes=dev_codes("t1"))
    capture = ChangeCapture(ledger.env)
    _write_some(ledger)
    capture.mark_published(4, stream_seq=9)
    if last_write == "unpublished":
        ledger.add_party(pb.Party(party_id="P1", name="Pharmacy"), 6)
    capture.detach()
    if last_write == "uncaptured":
        ledger.add_party(pb.Party(party_id="P1", name="Pharmacy"), 6)
    ledger.close()
    copy = ReplicaLedger(tmp_path / "writer", "t1")
    try:
        return copy.published()
    finally:
        copy.close()


@pytest.mark.parametrize("last_write", ["unpublished", "uncaptured"])
def test_a_fenced_writers_ledger_holding_what_its_stream_never_took_is_not_followed_on(
        tmp_path: Path, last_write: str) -> None:
    """A commit after the last one the stream acknowledged, captured or made after capture
    ended, leaves the ledger no position to follow on from: it is replaced by a snapshot."""
    assert _fenced(tmp_path, last_write) is None


def test_a_fenced_writers_ledger_holding_only_what_its_stream_took_follows_on(
        tmp_path: Path) -> None:
    """Every commit published and nothing written since: the copy follows on after the
    stream sequence of the last one; once a writer attaches again, the copy's replica
    position is gone."""
    position = _fenced(tmp_path, "")
    assert position is not None
    assert (position.commit_seq, position.stream_seq) == (4, 9)
    copy = ReplicaLedger(tmp_path / "writer", "t1")
    assert copy.start_from_snapshot(position.stream_seq).stream_seq == 9
    copy.close()
    ledger = Ledger(tmp_path / "writer", tenant="t1", codes=dev_codes("t1"))
    ChangeCapture(ledger.env)
    ledger.close()
    copy = ReplicaLedger(tmp_path / "writer", "t1")
    assert copy.applied().epoch == 0
    copy.close()
