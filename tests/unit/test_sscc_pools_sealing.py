"""SSCC pools and counters are stored sealed, and a ledger whose SSCC records were written in
clear (before they were sealed) is sealed when the writer opens it: its pools read back the
same, every SSCC allocated before still is, and allocation goes on from the same counter."""

from __future__ import annotations

import struct
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tests.ledgers import dev_codes
from tracecore import sscc
from tracecore.keys import KeySource
from tracecore.ledger.env import Txn
from tracecore.ledger.sscc_pools import SEALED_MARK, SsccPools
from tracecore.ledger.tenants import DataDir

PREFIX = "0614141"
T0 = 1_700_000_000_000
COUNTER = b"sscc:next:0614141:3"
POOL = b"sscc:pool:pallets-1"
SINCE = lpb.SsccPoolRecord(request_id="sealed-since", company_prefix=PREFIX, extension_digit=4,
                           first=0, count=5, created_at_ms=T0)


def _meta(data: DataDir, tenant: str, key: bytes) -> bytes:
    ledger = data.get(tenant).ledger
    with ledger.env.read() as txn:
        value = txn.get(key, db=ledger.db["meta"])
        assert value is not None
        return bytes(value)


def test_pools_and_counters_are_stored_sealed(tmp_path: Path) -> None:
    data = DataDir(tmp_path, KeySource.dev())
    try:
        pools = SsccPools(data.create("acme", "Acme", T0).ledger)
        pools.register_prefix(PREFIX, T0)
        record = pools.allocate("pallets-1", PREFIX, 3, 50, T0)
        counter, pool = _meta(data, "acme", COUNTER), _meta(data, "acme", POOL)
    finally:
        data.close()
    assert counter != struct.pack(">Q", 50) and pool != record.SerializeToString()
    codes = dev_codes("acme")
    assert codes.open(counter) == struct.pack(">Q", 50)
    assert codes.open(pool) == record.SerializeToString()


def test_a_ledger_with_sscc_records_in_clear_is_sealed_when_the_writer_opens_it(
        tmp_path: Path) -> None:
    data = DataDir(tmp_path, KeySource.dev())
    old = lpb.SsccPoolRecord(request_id="pallets-1", company_prefix=PREFIX, extension_digit=3,
                             first=0, count=50, created_at_ms=T0)
    try:
        ledger = data.create("acme", "Acme", T0).ledger
        SsccPools(ledger).register_prefix(PREFIX, T0)

        def write_in_clear(txn: Txn) -> None:
            """What a build from before the sealing left: values as they are, and no mark; and
            one pool sealed since, which must not be sealed twice."""
            meta = ledger.db["meta"]
            txn.put(COUNTER, struct.pack(">Q", 50), db=meta)
            txn.put(POOL, old.SerializeToString(), db=meta)
            txn.put(b"sscc:pool:sealed-since", dev_codes("acme").seal(
                SINCE.SerializeToString()), db=meta)
            txn.delete(SEALED_MARK, db=meta)

        ledger.env.write(write_in_clear)
    finally:
        data.close()

    reader = DataDir(tmp_path, KeySource.dev(), readonly=True)
    try:
        assert _meta(reader, "acme", COUNTER) == struct.pack(">Q", 50)  # still in clear
    finally:
        reader.close()

    data = DataDir(tmp_path, KeySource.dev())
    try:
        pools = SsccPools(data.get("acme").ledger)
        assert pools.pool("pallets-1") == old
        assert pools.pool("sealed-since") == SINCE
        assert pools.allocated_under(sscc.mint(PREFIX, 3, 49)) == PREFIX
        assert pools.allocated_under(sscc.mint(PREFIX, 3, 50)) is None
        assert pools.allocate("pallets-2", PREFIX, 3, 10, T0).first == 50
        counter, pool = _meta(data, "acme", COUNTER), _meta(data, "acme", POOL)
    finally:
        data.close()
    codes = dev_codes("acme")
    assert codes.open(counter) == struct.pack(">Q", 60)
    assert codes.open(pool) == old.SerializeToString()

    # Opened again: sealed once, not twice.
    data = DataDir(tmp_path, KeySource.dev())
    try:
        assert SsccPools(data.get("acme").ledger).pool("pallets-1") == old
    finally:
        data.close()
