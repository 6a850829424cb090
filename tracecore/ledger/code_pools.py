"""A tenant's code pools: what a line asked for, the codes issued into it in order, and how many
it handed back. Part of ``Ledger`` (``tracecore.ledger.store``), in the same LMDB environment."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata
from tracecore.codes import Scheme, product_key
from tracecore.errors import FailedPrecondition, InvalidArgument, NotFound
from tracecore.ledger.code_keys import CodeKeys
from tracecore.ledger.env import Database, Env, Txn
from tracecore.ledger.records import (
    CodeRecord,
    pool_code_key,
    pool_code_keys,
    ref_key,
    sorted_keys,
    u64,
)
from tracecore.minting import density_slot
from tracecore.schemes import SCHEMES
from tracecore.status import Status

_U64 = struct.Struct(">Q")
_KEY_ID = struct.Struct(">H")
# Scheme letter + GTIN-14, or scheme letter + 7-digit drug identifier.
_PREFIX_LENGTH = {s.key_letter: 1 + s.product_length for s in SCHEMES.values()}
#: ``pharmatrace.v1.PoolState`` of a pool still being issued, and of one fully issued.
POOL_STATE_OPEN = 1
POOL_STATE_COMPLETE = 2


@dataclass(frozen=True, slots=True)
class PoolRequest:
    """What a line asked for; a retry under the same request id must ask for the same."""

    request_id: str
    product: str
    lot: str
    level: int
    count: int
    requester: str = ""
    """The credential asking for it; it (or its party) alone may hand its codes back."""
    requester_party: str = ""


class CodePools:
    """The pool operations of ``Ledger``, which provides what is declared here."""

    env: Env
    db: dict[str, Database]
    codes: CodeKeys

    if TYPE_CHECKING:
        def _product(self, txn: Txn, identifier: str, field: str = "product"
                     ) -> tuple[int, pb.Product]: ...

        def _batch(self, txn: Txn, product: str, lot: str) -> tuple[int, pb.Batch]: ...

        def _next_ref(self, txn: Txn, kind: bytes) -> int: ...

    # -- code pools ----------------------------------------------------------------------------

    def open_pool(self, request: PoolRequest, key_id: int, now_ms: int) -> lpb.PoolRecord:
        """The pool for a request id: created on first sight, checked against the request after."""

        def fn(txn: Txn) -> lpb.PoolRecord:
            product_ref, product = self._product(txn, request.product)
            batch_ref = 0
            if request.lot:
                batch_ref, _ = self._batch(txn, request.product, request.lot)
            existing = txn.get(request.request_id.encode(), db=self.db["pools"])
            if existing is not None:
                record = lpb.PoolRecord.FromString(bytes(existing))
                pool = record.pool
                if (pool.product, pool.lot, pool.level, pool.count) != (
                    masterdata.code_product(product), request.lot, request.level, request.count
                ):
                    raise FailedPrecondition(
                        f"request_id {request.request_id} was used for a different request "
                        f"({pool.count} codes of {pool.product}"
                        + (f" lot {pool.lot}" if pool.lot else "") + ")",
                        field="request_id",
                    )
                return record
            record = lpb.PoolRecord(
                pool_ref=self._next_ref(txn, b"pool"),
                product_ref=product_ref,
                batch_ref=batch_ref,
                requester=request.requester,
                requester_party=request.requester_party,
            )
            pool = record.pool
            pool.request_id = request.request_id
            pool.product = masterdata.code_product(product)
            pool.lot = request.lot
            pool.level = request.level  # type: ignore[assignment]
            pool.scheme = product.scheme
            pool.count = request.count
            pool.state = POOL_STATE_OPEN  # type: ignore[assignment]
            pool.key_id = key_id
            pool.created_at_ms = now_ms
            txn.put(request.request_id.encode(), record.SerializeToString(), db=self.db["pools"])
            txn.put(ref_key(record.pool_ref), request.request_id.encode(), db=self.db["pool_refs"])
            return record

        return self.env.write(fn)

    def pool_by_ref(self, txn: Txn, pool_ref: int) -> lpb.PoolRecord:
        """The record of the pool a code was issued from, by its ref."""
        request_id = txn.get(ref_key(pool_ref), db=self.db["pool_refs"])
        if request_id is None:
            raise NotFound(f"no pool has ref {pool_ref}", field="pool")
        data = txn.get(bytes(request_id), db=self.db["pools"])
        if data is None:
            raise NotFound(f"no pool was requested under {bytes(request_id).decode()}",
                           field="request_id")
        return lpb.PoolRecord.FromString(bytes(data))

    def pool(self, request_id: str) -> lpb.PoolRecord:
        with self.env.read() as txn:
            data = txn.get(request_id.encode(), db=self.db["pools"])
            if data is None:
                raise NotFound(f"no pool was requested under {request_id}", field="request_id")
            return lpb.PoolRecord.FromString(bytes(data))

    def pool_serials(self, pool_ref: int, start: int, stop: int) -> list[str]:
        """Serials at pool positions [start, stop), in issue order."""
        with self.env.read() as txn:
            cursor = txn.cursor(db=self.db["pool_codes"])
            out: list[str] = []
            if not cursor.set_range(pool_code_key(pool_ref, start)):
                return out
            end = pool_code_key(pool_ref, stop)
            plain = self.codes.plain
            for key, code_key in cursor:
                if bytes(key) >= end:
                    break
                ck = plain(bytes(code_key))
                out.append(ck[_PREFIX_LENGTH[ck[:1]]:].decode())
            return out

    def minted(self, product: str, slot: int) -> int:
        """Codes minted so far for a product in one random space (see minting.density_slot)."""
        with self.env.read() as txn:
            data = txn.get(product.encode() + _KEY_ID.pack(slot), db=self.db["minted"])
            return u64(data) if data is not None else 0

    def append_pool_codes(
        self,
        request_id: str,
        position: int,
        serials: list[str],
        key_id: int,
        now_ms: int,
        redraw: Callable[[int], list[str]],
    ) -> list[str]:
        """``append_pool_keys`` for serials given as text: the serials as stored, or []."""
        with self.env.read() as txn:
            data = txn.get(request_id.encode(), db=self.db["pools"])
        if data is None:
            raise NotFound(f"no pool was requested under {request_id}", field="request_id")
        pool = lpb.PoolRecord.FromString(bytes(data)).pool
        prefix = product_key(Scheme(pool.scheme), pool.product)
        cut = len(prefix)

        def redraw_keys(n: int) -> list[bytes]:
            return [prefix + s.encode() for s in redraw(n)]

        stored = self.append_pool_keys(request_id, position, [prefix + s.encode() for s in serials],
                                       key_id, now_ms, redraw_keys)
        return [key[cut:].decode() for key in stored]

    def append_pool_keys(
        self,
        request_id: str,
        position: int,
        keys: list[bytes],
        key_id: int,
        now_ms: int,
        redraw: Callable[[int], list[bytes]],
        in_pool: list[bytes] | None = None,
    ) -> list[bytes]:
        """Stores the codes with ledger ``keys`` (the pool's product key, then the serial) as the
        pool's codes from ``position`` on, durably, in one commit.

        Keys that collide with any code ever issued (or with each other) are replaced by
        ``redraw(n)`` until all are new. Returns the keys as issued (redraws included; ledger
        keys, not their encrypted stored form), or [] without storing
        anything when the pool is no longer at ``position`` (another stream of the same request
        got there first).

        The codes go into the code tree in one C loop, in key order (each insert lands beside
        the last one's page path instead of anywhere in the tree). A clash (a random draw equal
        to an earlier one: rare) undoes the whole transaction, which then runs again with the
        codes put one at a time so that the clashing ones are found and redrawn.

        ``in_pool``: ``keys`` as the ledger stores them (``CodeKeys.stored_many``), when the
        caller encrypted them already. Either way they are encrypted and sorted before the
        write transaction, which other writers of the ledger wait for.
        """
        one_at_a_time = False
        encrypted = in_pool if in_pool is not None else self.codes.stored_many(keys)
        ordered = sorted_keys(encrypted)

        def fn(txn: Txn) -> list[bytes]:
            data = txn.get(request_id.encode(), db=self.db["pools"])
            if data is None:
                raise NotFound(f"no pool was requested under {request_id}", field="request_id")
            record = lpb.PoolRecord.FromString(bytes(data))
            pool = record.pool
            if pool.issued != position:
                return []
            if position + len(keys) > pool.count:
                raise InvalidArgument("more codes than the pool asked for", field="count")
            prefix = product_key(Scheme(pool.scheme), pool.product)
            # Stored keys keep the product in clear: they sort by product like the plain ones.
            # Sorted, every key lies between the first and the last: if both begin with the
            # product key, all do.
            if ordered and not (ordered[0].startswith(prefix) and ordered[-1].startswith(prefix)):
                raise InvalidArgument("codes of another product than the pool's", field="product")
            value = CodeRecord(
                status=Status.ISSUED,
                level=pool.level,
                key_id=key_id,
                product_ref=record.product_ref,
                batch_ref=record.batch_ref,
                pool_ref=record.pool_ref,
                issued_at_ms=now_ms,
                updated_at_ms=now_ms,
            ).pack()
            codes_db = self.db["codes"]
            if one_at_a_time:
                stored = _insert_one_at_a_time(txn, codes_db, list(keys), value, redraw,
                                               self.codes)
                stored_in_pool = self.codes.stored_many(stored)
            else:
                _, added = txn.cursor(db=codes_db).putmulti(
                    zip(ordered, repeat(value)), dupdata=False, overwrite=False)
                if added != len(keys):
                    raise _Clash
                stored, stored_in_pool = keys, encrypted
            end = position + len(stored)
            txn.cursor(db=self.db["pool_codes"]).putmulti(
                zip(pool_code_keys(record.pool_ref, position, end), stored_in_pool, strict=True))
            pool.issued = end
            if pool.issued == pool.count:
                pool.state = POOL_STATE_COMPLETE  # type: ignore[assignment]
            txn.put(request_id.encode(), record.SerializeToString(), db=self.db["pools"])
            slot = density_slot(Scheme(pool.scheme), key_id)
            minted_key = pool.product.encode() + _KEY_ID.pack(slot)
            before = txn.get(minted_key, db=self.db["minted"])
            total = (u64(before) if before is not None else 0) + len(stored)
            txn.put(minted_key, _U64.pack(total), db=self.db["minted"])
            return stored

        try:
            return self.env.write(fn)
        except _Clash:
            one_at_a_time = True
            return self.env.write(fn)

    # -- codes ---------------------------------------------------------------------------------

    def count_returns(self, txn: Txn, returned_by_pool_ref: dict[int, int]) -> None:
        """Adds voided codes to their pools' returned counts."""
        for pool_ref, n in returned_by_pool_ref.items():
            request_id = txn.get(ref_key(pool_ref), db=self.db["pool_refs"])
            data = txn.get(bytes(request_id), db=self.db["pools"]) if request_id else None
            if request_id is None or data is None:
                raise NotFound(f"pool #{pool_ref} is missing from the ledger")
            record = lpb.PoolRecord.FromString(bytes(data))
            record.pool.returned += n
            txn.put(request_id, record.SerializeToString(), db=self.db["pools"])


class _Clash(Exception):
    """A pool's new code equals one already in the ledger, or another of the same commit."""


def _insert_one_at_a_time(txn: Txn, codes_db: Database, keys: list[bytes], value: bytes,
                          redraw: Callable[[int], list[bytes]], codes: CodeKeys) -> list[bytes]:
    """Inserts the codes one by one, redrawing each key already issued (or drawn twice here)
    until all are new; ``keys`` as issued."""
    pending = list(range(len(keys)))
    stored = codes.stored
    while pending := [i for i in pending
                      if not txn.put(stored(keys[i]), value, db=codes_db, overwrite=False)]:
        for i, key in zip(pending, redraw(len(pending)), strict=True):
            keys[i] = key
    return keys
