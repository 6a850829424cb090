"""One tenant's ledger: master data, code pools and code records in one LMDB environment."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import TypeVar

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata
from tracecore._speedups import load
from tracecore.codes import Scheme, product_key
from tracecore.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tracecore.ledger.code_keys import CodeKeys, NoCodeKeys
from tracecore.ledger.env import DEFAULT_MAP_SIZE, Database, Env, Txn
from tracecore.ledger.records import (
    CodeRecord,
    pool_code_key,
    pool_code_keys,
    ref_key,
    ref_of,
    u64,
)
from tracecore.minting import density_slot
from tracecore.paging import next_token, page_size, page_start
from tracecore.schemes import SCHEMES
from tracecore.status import Status

DATABASES = (
    "meta",         # counters: next refs
    "products",     # product ref -> Product
    "product_ids",  # GTIN-14 / NMPA id -> product ref
    "batches",      # batch ref -> Batch
    "batch_ids",    # product ref + lot -> batch ref
    "parties",      # party ref -> Party
    "party_ids",    # party id -> party ref
    "pools",        # request id -> PoolRecord
    "pool_refs",    # pool ref -> request id
    "pool_codes",   # pool ref + position -> code key
    "codes",        # code key -> CodeRecord
    "minted",       # product identifier + key id -> codes minted (density limit)
    "events",       # sequence -> EventRecord (append-only, hash-chained)
    "code_events",  # code key -> sequences of the events about it (dupsort)
    "event_ids",    # EPCIS eventID -> sequence (idempotent capture and import)
    "parents",      # child code key -> parent container key
    "children",     # container key -> child code keys (dupsort)
    "batch_codes",  # batch ref -> code keys commissioned into it (dupsort)
    "counters",     # see tracecore.ledger.counters
    "credentials",  # credential id -> CredentialRecord
    "cert_bindings",  # client certificate CN -> credential id
    "audit",        # sequence -> AuditRecord (append-only, hash-chained)
    "recalls",      # b"B" + batch ref / b"P" + product ref -> recall time, event sequence
    "material_lots",  # hash of supplier + supplier lot -> refs of the batches using it (dupsort)
    "batch_regions",  # batch, region, status -> units (see tracecore.ledger.oversight)
    "shipments",    # code in transit -> ref of the party that shipped it, if it restricts regions
    "foreign_codes",  # key of a code minted elsewhere -> ForeignCodeRecord (its provenance)
    "documents",    # business document type + NUL + id -> sequences of its events (dupsort)
)
DUPSORT = ("code_events", "children", "batch_codes", "material_lots", "documents")
#: Marks a ledger whose batches from before the material-lot index are in it.
_MATERIALS_INDEXED = b"index:material_lots"

_COMPILED = load("minting")
#: ``sorted`` for a list of ledger keys: compiled (a radix sort) where it is built.
_sorted_keys: Callable[[list[bytes]], list[bytes]] = (
    sorted if _COMPILED is None else _COMPILED.sorted_keys)
_U64 = struct.Struct(">Q")
_KEY_ID = struct.Struct(">H")
# Scheme letter + GTIN-14, or scheme letter + 7-digit drug identifier.
_PREFIX_LENGTH = {s.key_letter: 1 + s.product_length for s in SCHEMES.values()}
_M = TypeVar("_M", pb.Product, pb.Batch, pb.Party)
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


class Ledger:
    """A tenant's ledger. The writer (codegen_svc) opens it read-write, verifiers read-only.

    ``codes`` converts codes' ledger keys to the form stored (``tracecore.ledger.code_keys``):
    without it (a ledger opened without the key-encryption key), reading or writing a code
    fails."""

    def __init__(
        self, path: Path, *, tenant: str, readonly: bool = False, map_size: int = DEFAULT_MAP_SIZE,
        codes: CodeKeys | None = None,
    ) -> None:
        self.tenant = tenant
        self.codes: CodeKeys = codes if codes is not None else NoCodeKeys(
            f"tenant {tenant}'s ledger was opened without the key-encryption key")
        self.env = Env(path, DATABASES, owner=tenant, readonly=readonly, map_size=map_size,
                       dupsort=DUPSORT)
        self.db = self.env.dbs

    def close(self) -> None:
        self.env.close()

    # -- master data -------------------------------------------------------------------------

    def register_product(self, product: pb.Product, now_ms: int) -> pb.Product:
        p = masterdata.product(product)
        p.created_at_ms = now_ms

        def fn(txn: Txn) -> pb.Product:
            for ident in masterdata.identifiers(p):
                if txn.get(ident.encode(), db=self.db["product_ids"]) is not None:
                    raise AlreadyExists(f"product {ident} is already registered", field="product")
            ref = self._next_ref(txn, b"product")
            txn.put(ref_key(ref), p.SerializeToString(), db=self.db["products"])
            for ident in masterdata.identifiers(p):
                txn.put(ident.encode(), ref_key(ref), db=self.db["product_ids"])
            return p

        return self.env.write(fn)

    def update_product(self, identifier: str, change: Callable[[pb.Product], pb.Product]
                       ) -> pb.Product:
        """Stores ``change`` of a registered product's record, read and written in one
        transaction; NotFound when not registered."""

        def fn(txn: Txn) -> pb.Product:
            ref, current = self._product(txn, identifier)
            updated = change(current)
            txn.put(ref_key(ref), updated.SerializeToString(), db=self.db["products"])
            return updated

        return self.env.write(fn)

    def product(self, identifier: str) -> tuple[int, pb.Product]:
        """(ref, product) for a GTIN or NMPA id; NotFound when not registered."""
        ident = masterdata.product_identifier(identifier)
        with self.env.read() as txn:
            return self._product(txn, ident)

    def product_by_ref(self, txn: Txn, ref: int) -> pb.Product:
        data = txn.get(ref_key(ref), db=self.db["products"])
        if data is None:
            raise NotFound(f"product #{ref} is missing from the ledger")
        return pb.Product.FromString(bytes(data))

    def products(self, page_size: int, page_token: str) -> tuple[list[pb.Product], str]:
        return self._page("products", pb.Product, page_size, page_token)

    def add_batch(self, batch: pb.Batch, now_ms: int) -> pb.Batch:
        b = masterdata.batch(batch)
        b.created_at_ms = now_ms

        def fn(txn: Txn) -> pb.Batch:
            product_ref, _ = self._product(txn, b.product, field="batch.product")
            key = ref_key(product_ref) + b.lot.encode()
            if txn.get(key, db=self.db["batch_ids"]) is not None:
                raise AlreadyExists(f"batch {b.lot} of product {b.product} already exists",
                                    field="batch.lot")
            ref = self._next_ref(txn, b"batch")
            txn.put(ref_key(ref), b.SerializeToString(), db=self.db["batches"])
            txn.put(key, ref_key(ref), db=self.db["batch_ids"])
            self._index_materials(txn, ref, b)
            return b

        return self.env.write(fn)

    def batch(self, product: str, lot: str) -> tuple[int, pb.Batch]:
        with self.env.read() as txn:
            return self._batch(txn, product, lot)

    def batch_in(self, txn: Txn, product: str, lot: str) -> tuple[int, pb.Batch]:
        """(ref, batch) inside the caller's transaction; NotFound when not registered."""
        return self._batch(txn, product, lot)

    def batch_by_ref(self, txn: Txn, ref: int) -> pb.Batch:
        data = txn.get(ref_key(ref), db=self.db["batches"])
        if data is None:
            raise NotFound(f"batch #{ref} is missing from the ledger")
        return pb.Batch.FromString(bytes(data))

    def batches(self, product: str, page_size: int, page_token: str) -> tuple[list[pb.Batch], str]:
        wanted = masterdata.product_identifier(product) if product else ""
        return self._page("batches", pb.Batch, page_size, page_token,
                          keep=lambda b: not wanted or b.product == wanted)

    def product_in(self, txn: Txn, identifier: str, field: str = "product"
                   ) -> tuple[int, pb.Product]:
        """(ref, product) for a GTIN or NMPA id in ``txn``; NotFound naming ``field``."""
        return self._product(txn, identifier, field)

    def batches_using(self, txn: Txn, supplier: str, supplier_lot: str
                      ) -> list[tuple[int, pb.Batch, pb.MaterialLot]]:
        """(ref, batch, its entry for the lot) of every batch that used a supplier's lot, in the
        order they were added; supplier and lot compare ignoring case and runs of spaces."""
        wanted = (_folded(supplier), _folded(supplier_lot))
        cursor = txn.cursor(db=self.db["material_lots"])
        out: list[tuple[int, pb.Batch, pb.MaterialLot]] = []
        if not cursor.set_key(material_key(supplier, supplier_lot)):
            return out
        for value in cursor.iternext_dup():
            ref = ref_of(value)
            batch = self.batch_by_ref(txn, ref)
            for material in batch.materials:
                if (_folded(material.supplier), _folded(material.supplier_lot)) == wanted:
                    out.append((ref, batch, material))
                    break
        return out

    def add_party(self, party: pb.Party, now_ms: int) -> pb.Party:
        p = masterdata.party(party)
        p.created_at_ms = now_ms

        def fn(txn: Txn) -> pb.Party:
            if txn.get(p.party_id.encode(), db=self.db["party_ids"]) is not None:
                raise AlreadyExists(f"party {p.party_id} already exists", field="party.party_id")
            ref = self._next_ref(txn, b"party")
            txn.put(ref_key(ref), p.SerializeToString(), db=self.db["parties"])
            txn.put(p.party_id.encode(), ref_key(ref), db=self.db["party_ids"])
            return p

        return self.env.write(fn)

    def party(self, party_id: str) -> tuple[int, pb.Party]:
        with self.env.read() as txn:
            return self.party_in(txn, party_id)

    def party_in(self, txn: Txn, party_id: str, field: str = "party_id") -> tuple[int, pb.Party]:
        """(ref, party) of a registered party; NotFound naming ``field`` otherwise."""
        masterdata.party_id(party_id, field)
        ref = txn.get(party_id.encode(), db=self.db["party_ids"])
        if ref is None:
            raise NotFound(f"party {party_id} is not registered", field=field)
        return ref_of(ref), self.party_by_ref(txn, ref_of(ref))

    def party_by_ref(self, txn: Txn, ref: int) -> pb.Party:
        data = txn.get(ref_key(ref), db=self.db["parties"])
        if data is None:
            raise NotFound(f"party #{ref} is missing from the ledger")
        return pb.Party.FromString(bytes(data))

    def parties(self, page_size: int, page_token: str) -> tuple[list[pb.Party], str]:
        return self._page("parties", pb.Party, page_size, page_token)

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
        ordered = _sorted_keys(encrypted)

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

    def code_record(self, txn: Txn, key: bytes) -> CodeRecord | None:
        """The record of the code with ledger key ``key``; None when it is not in the ledger."""
        data = txn.get(self.codes.stored(key), db=self.db["codes"])
        return CodeRecord.unpack(data) if data is not None else None

    def code_data(self, txn: Txn, key: bytes) -> bytes | memoryview | None:
        """The packed record of the code with ledger key ``key``, as stored."""
        return txn.get(self.codes.stored(key), db=self.db["codes"])

    def parent_of(self, txn: Txn, key: bytes) -> bytes | None:
        """The ledger key of the container a code is packed in; None when it is in none."""
        data = txn.get(self.codes.stored(key), db=self.db["parents"])
        return self.codes.plain(bytes(data)) if data is not None else None

    def children_of(self, txn: Txn, key: bytes, limit: int | None = None
                    ) -> tuple[list[bytes], int]:
        """(ledger keys of what a container holds, at most ``limit`` of them, in key order;
        how many it holds)."""
        cursor = txn.cursor(db=self.db["children"])
        if not cursor.set_key(self.codes.stored(key)):
            return [], 0
        stored = [bytes(v) for v in cursor.iternext_dup()]
        kids = sorted(self.codes.plain_many(stored))
        return (kids if limit is None else kids[:limit]), len(stored)

    def packs_named(self, txn: Txn, keys: Iterable[bytes]) -> set[bytes]:
        """The packs ``keys`` name, a container standing for everything packed inside it (as
        now)."""
        out: set[bytes] = set()
        stack = [bytes(k) for k in keys]
        while stack:
            key = stack.pop()
            children = self.children_of(txn, key)[0]
            if children:
                stack.extend(children)
            else:
                out.add(key)
        return out

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

    # -- helpers -------------------------------------------------------------------------------

    def _product(self, txn: Txn, identifier: str, field: str = "product") -> tuple[int, pb.Product]:
        ident = masterdata.product_identifier(identifier, field)
        ref = txn.get(ident.encode(), db=self.db["product_ids"])
        if ref is None:
            raise NotFound(f"product {ident} is not registered", field=field)
        return ref_of(ref), self.product_by_ref(txn, ref_of(ref))

    def _batch(self, txn: Txn, product: str, lot: str) -> tuple[int, pb.Batch]:
        product_ref, p = self._product(txn, product)
        ref = txn.get(ref_key(product_ref) + lot.encode(), db=self.db["batch_ids"])
        if ref is None:
            raise NotFound(f"batch {lot} of product {masterdata.code_product(p)} is not "
                           "registered", field="lot")
        return ref_of(ref), self.batch_by_ref(txn, ref_of(ref))

    def _index_materials(self, txn: Txn, ref: int, batch: pb.Batch) -> None:
        for material in batch.materials:
            txn.put(material_key(material.supplier, material.supplier_lot), ref_key(ref),
                    db=self.db["material_lots"], dupdata=True)

    def index_old_batches(self, txn: Txn) -> None:
        """Adds batches stored before the material-lot index existed to it, once (format 2's
        migration step)."""
        if txn.get(_MATERIALS_INDEXED, db=self.db["meta"]) is not None:
            return
        for key in txn.cursor(db=self.db["batches"]).iternext(values=False):
            self._index_materials(txn, ref_of(key), self.batch_by_ref(txn, ref_of(key)))
        txn.put(_MATERIALS_INDEXED, b"1", db=self.db["meta"])

    def next_ref(self, txn: Txn, kind: bytes) -> int:
        """The next ref of a kind of record (b"party", b"product", ...), taken in ``txn``."""
        return self._next_ref(txn, kind)

    def _next_ref(self, txn: Txn, kind: bytes) -> int:
        key = b"next:" + kind
        data = txn.get(key, db=self.db["meta"])
        ref = u64(data) if data is not None else 1
        txn.put(key, _U64.pack(ref + 1), db=self.db["meta"])
        return ref

    def _page(
        self,
        db: str,
        message: type[_M],
        requested_size: int,
        page_token: str,
        keep: Callable[[_M], bool] = lambda _: True,
    ) -> tuple[list[_M], str]:
        size = page_size(requested_size)
        start = page_start(page_token, last=2**32 - 1)
        out: list[_M] = []
        with self.env.read() as txn:
            cursor = txn.cursor(db=self.db[db])
            if not cursor.set_range(ref_key(start)):
                return out, ""
            for key, data in cursor:
                item = message.FromString(bytes(data))
                if keep(item):
                    if len(out) == size:
                        return out, next_token(ref_of(key))
                    out.append(item)
        return out, ""


def material_key(supplier: str, supplier_lot: str) -> bytes:
    """Index key of a supplier's lot: a hash, since the two texts may exceed LMDB's key size."""
    text = f"{_folded(supplier)}\x00{_folded(supplier_lot)}"
    return hashlib.sha256(text.encode()).digest()[:16]


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


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
