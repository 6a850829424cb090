"""A pool issued over several commits, with the next commit's codes minted ahead of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pharmatrace.v1 import common_pb2 as cpb

from tracecore import issuance
from tracecore.codes import Code, Scheme, product_key
from tracecore.errors import InvalidArgument
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.mac import Mac
from tracecore.minting import Minter, check_tag, key_id_of

GTIN = "09501101530003"
OTHER_GTIN = "09501101530010"
LOT = "L1"
T0 = 1_700_000_000_000
SIZE = 1000
MAC = Mac(b"\x03" * 32)


@pytest.fixture
def tenant(tmp_path: Path) -> Tenant:
    data = DataDir(tmp_path, KeySource.dev())
    found = data.create("acme", "Acme", T0)
    found.ledger.register_product(cpb.Product(gtin=GTIN, name="Testol"), T0)
    found.ledger.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on="2031-12-31"), T0)
    return found


def _request(request_id: str, count: int) -> issuance.PoolRequest:
    return issuance.pool_request(request_id, GTIN, LOT, 1, count)


def test_a_pool_over_many_commits_holds_distinct_codes_each_under_the_active_key(
        tenant: Tenant) -> None:
    """Codes minted ahead of a commit carry the key that was active for it: after a rotation
    mid-pool, the codes of later commits are tagged under the new key, all verify, none
    repeats, and a retry replays them exactly."""
    chunks = issuance.issue(tenant, _request("p1", 9 * SIZE), SIZE, lambda: T0)
    serials = list(next(chunks).serials)  # the first commit: one chunk
    rotated = tenant.keys.rotate().key_id
    serials += [s for chunk in chunks for s in chunk.serials]
    assert len(serials) == len(set(serials)) == 9 * SIZE
    macs = tenant.keys.macs()
    key_ids = [check_tag(Code(Scheme.GS1, GTIN, s), macs) for s in serials]
    assert None not in key_ids
    assert key_ids[:SIZE] == [key_id_of(Code(Scheme.GS1, GTIN, serials[0]))] * SIZE
    assert key_ids[SIZE:] == [rotated] * (8 * SIZE)
    replay = issuance.issue(tenant, _request("p1", 9 * SIZE), SIZE, lambda: T0)
    assert [s for chunk in replay for s in chunk.serials] == serials
    assert tenant.ledger.pool("p1").pool.issued == 9 * SIZE


def test_a_pool_abandoned_mid_stream_resumes_to_exactly_its_count(tenant: Tenant) -> None:
    """Codes minted ahead for a stream that ends are never issued: the retry continues from
    what was committed and the pool ends with exactly its count of distinct codes."""
    chunks = issuance.issue(tenant, _request("p2", 7 * SIZE), SIZE, lambda: T0)
    first = [s for _, chunk in zip(range(3), chunks, strict=False) for s in chunk.serials]
    chunks.close()
    issued = tenant.ledger.pool("p2").pool.issued
    assert issued >= len(first)
    again = [s for chunk in issuance.issue(tenant, _request("p2", 7 * SIZE), SIZE, lambda: T0)
             for s in chunk.serials]
    assert again[:len(first)] == first
    assert len(again) == len(set(again)) == 7 * SIZE
    assert tenant.ledger.pool("p2").pool.issued == 7 * SIZE


def test_minted_ledger_keys_are_the_product_key_then_a_tagged_serial() -> None:
    """``mint_keys`` gives the keys the ledger stores, whose serials ``mint`` would give."""
    minter = Minter(Scheme.GS1, GTIN, 3, MAC)
    keys = minter.mint_keys(200)
    head = product_key(Scheme.GS1, GTIN)
    assert all(k.startswith(head) for k in keys)
    serials = [k[minter.cut:].decode() for k in keys]
    assert all(check_tag(Code(Scheme.GS1, GTIN, s), {3: MAC}) == 3 for s in serials)
    assert len(minter.mint(200)) == 200


def test_codes_of_another_product_are_refused_by_the_pool(tenant: Tenant) -> None:
    """A pool stores only codes of its own product."""
    tenant.ledger.open_pool(_request("p3", 10), tenant.keys.active.key_id, T0)
    key = tenant.keys.active
    wrong = Minter(Scheme.GS1, OTHER_GTIN, key.key_id, key.mac).mint_keys(10)
    with pytest.raises(InvalidArgument):
        tenant.ledger.append_pool_keys("p3", 0, wrong, key.key_id, T0, lambda n: [])
    assert tenant.ledger.pool("p3").pool.issued == 0

