"""An EPCIS REST store written in clear by an earlier release is sealed when first opened: its
jobs, queued documents, named queries, subscriptions and outbox read back the same, none of
them names a code in clear any more, and what is written after is sealed too."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ledgers import dev_codes
from tracecore.ledger.env import Env, Txn, compact
from tracecore.ledger.epcis_rest import DATABASES, EpcisStore, _outbox_key

EPC = "https://id.gs1.org/01/09501101530003/21/01ABCDEFGHJKMNPQRST0"
SERIAL = b"01ABCDEFGHJKMNPQRST0"
JOB = {"captureID": "c1", "running": True, "success": True, "errors": []}
DOCUMENT = json.dumps({"epcisBody": {"eventList": [{"epcList": [EPC]}]}})
QUERY = {"name": "watched", "query": {"MATCH_epc": [EPC]}}
SUB = {"subscriptionID": "s1", "queryName": "watched", "enqueued": 1, "cursor": 7}
BODY = json.dumps({"eventList": [{"epcList": [EPC]}]}).encode()


def _raw(path: Path) -> bytes:
    return (path / "data.mdb").read_bytes()


def _write_in_clear(path: Path) -> None:
    """The store as an earlier release left it: every value as it is."""
    env = Env(path, DATABASES, owner="t")

    def fn(txn: Txn) -> None:
        db = env.dbs
        txn.put(b"c1", json.dumps(JOB).encode(), db=db["jobs"])
        txn.put(b"c1", DOCUMENT.encode(), db=db["documents"])
        txn.put(b"c1", b"", db=db["queue"])
        txn.put(b"watched", json.dumps(QUERY).encode(), db=db["queries"])
        txn.put(b"s1", json.dumps(SUB).encode(), db=db["subscriptions"])
        txn.put(_outbox_key("s1", 1), BODY, db=db["outbox"])

    env.write(fn)
    env.close()


def test_a_store_written_in_clear_is_sealed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "epcis-rest"
    _write_in_clear(path)
    assert SERIAL in _raw(path)

    store = EpcisStore(path, tenant="t", codes=dev_codes("t"))
    try:
        assert store.queued() == ["c1"]
        assert store.load("c1") == (JOB, DOCUMENT)
        assert store.query("watched") == QUERY
        assert store.subscriptions() == [SUB]
        assert store.next_delivery("s1") == (1, BODY)
        store.enqueue("s1", 9, [BODY])
        assert store.put_query("second", {**QUERY, "name": "second"})
    finally:
        store.close()
    # Compacted (as ``tenant migrate`` does), so that only live pages are looked at: the pages
    # the rewrite freed keep the clear values until reused.
    compact(path, "t")
    assert SERIAL not in _raw(path)

    # Opened again: sealed once, not twice.
    again = EpcisStore(path, tenant="t", codes=dev_codes("t"))
    try:
        assert again.load("c1") == (JOB, DOCUMENT)
        assert sorted(q["name"] for q in again.queries()) == ["second", "watched"]
        assert again.pending() == 2
    finally:
        again.close()
