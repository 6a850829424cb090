"""A partner's answer trail written in clear by an earlier release is sealed when first opened:
its records read back the same, its chain still verifies, and what is appended after is sealed
too."""

from __future__ import annotations

from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tests.ledgers import dev_codes
from tracecore.ledger.answer_trail import DATABASES, AnswerTrail
from tracecore.ledger.chain import Chain
from tracecore.ledger.env import Env, Txn
from tracecore.ledger.records import seq_key

SERIALS = ("01ABCDEFGHJKMNPQRST0", "01ZYXWVTSRQPNMKJHGF9")


def _record(serial: str) -> lpb.AuditRecord:
    return lpb.AuditRecord(at_ms=1_000, peer="partner", method="LVMS/verify",
                           summary=f"gtin=09501101530003 ser={serial}", status="OK")


def test_a_trail_written_in_clear_is_sealed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "answers"
    env = Env(path, DATABASES, owner="t")
    chain = Chain(env.dbs["audit"], env.dbs["meta"], b"answers:head", lpb.AuditRecord)
    env.write(lambda txn: [chain.append(txn, _record(s)) for s in SERIALS])
    with env.read() as txn:
        stored = [bytes(v) for _, v in txn.cursor(db=env.dbs["audit"])]
    env.close()
    assert all(s.encode() in v for s, v in zip(SERIALS, stored, strict=True))

    trail = AnswerTrail(path, tenant="t", codes=dev_codes("t"))
    try:
        assert [r.summary for r in trail.records()] == [_record(s).summary for s in SERIALS]
        assert trail.verify() == (2, None)
        trail.buffer(_record("01NEWSERIAL000000000"))
        assert trail.flush() == 1
        with trail.env.read() as txn:
            stored = [bytes(v) for _, v in txn.cursor(db=trail.env.dbs["audit"])]
        assert len(stored) == 3
        assert not any(s.encode() in v for s in (*SERIALS, "01NEWSERIAL000000000")
                       for v in stored)
        assert trail.verify() == (3, None)
    finally:
        trail.close()
    # Opened again: sealed once, not twice.
    again = AnswerTrail(path, tenant="t", codes=dev_codes("t"))
    try:
        assert len(again.records()) == 3 and again.verify() == (3, None)
    finally:
        again.close()


def test_records_appended_in_one_flush_chain_as_if_appended_one_by_one(tmp_path: Path) -> None:
    """A flush seals and chains its records together: the records, their numbers and hashes
    are those of the same records appended one at a time, each stored record opens to the
    record as hashed (``hash`` included), and a record changed afterwards is found."""
    serials = [f"01SERIAL{i:012d}" for i in range(40)]
    one_by_one = Env(tmp_path / "one", DATABASES, owner="t")
    chain = Chain(one_by_one.dbs["audit"],
                  one_by_one.dbs["meta"], b"answers:head", lpb.AuditRecord, dev_codes("t"))
    singles = [_record(s) for s in serials]
    one_by_one.write(lambda txn: [chain.append(txn, r) for r in singles])
    with one_by_one.read() as txn:
        expected_head = chain.head(txn)
    one_by_one.close()

    trail = AnswerTrail(tmp_path / "answers", tenant="t", codes=dev_codes("t"))
    try:
        for serial in serials[:15]:
            trail.buffer(_record(serial))
        assert trail.flush() == 15
        for serial in serials[15:]:
            trail.buffer(_record(serial))
        assert trail.flush() == 25
        records = trail.records()
        assert records == singles
        assert [r.seq for r in records] == list(range(1, 41))
        with trail.env.read() as txn:
            assert trail.chain.head(txn) == expected_head
            stored = [bytes(v) for _, v in txn.cursor(db=trail.env.dbs["audit"])]
        assert [dev_codes("t").open(v) for v in stored] == [
            r.SerializeToString(deterministic=True) for r in singles]
        assert trail.verify() == (40, None)

        def tamper(txn: Txn) -> None:
            edited = lpb.AuditRecord()
            edited.ParseFromString(dev_codes("t").open(stored[19]))
            edited.summary = edited.summary.replace("0", "1")
            txn.put(seq_key(20), dev_codes("t").seal(edited.SerializeToString(
                deterministic=True)), db=trail.env.dbs["audit"])

        trail.env.write(tamper)
        assert trail.verify() == (19, 20)
    finally:
        trail.close()
