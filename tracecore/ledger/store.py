"""One tenant's ledger: master data, code pools and code records in one LMDB environment."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from pharmatrace.v1 import common_pb2 as pb

from tracecore import masterdata
from tracecore.errors import AlreadyExists, NotFound
from tracecore.ledger.code_keys import CodeKeys, NoCodeKeys
from tracecore.ledger.code_pools import (
    POOL_STATE_COMPLETE as POOL_STATE_COMPLETE,
)
from tracecore.ledger.code_pools import POOL_STATE_OPEN as POOL_STATE_OPEN
from tracecore.ledger.code_pools import CodePools
from tracecore.ledger.code_pools import PoolRequest as PoolRequest
from tracecore.ledger.env import DEFAULT_MAP_SIZE, Env, Txn
from tracecore.ledger.records import (
    CodeRecord,
    ref_key,
    ref_of,
    u64,
)
from tracecore.paging import next_token, page_size, page_start

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
    "contents",     # container, level, batch, product, status, flags -> packs inside it (see
                    # tracecore.ledger.contents)
)
DUPSORT = ("code_events", "children", "batch_codes", "material_lots", "documents")
#: Marks a ledger whose batches from before the material-lot index are in it.
_MATERIALS_INDEXED = b"index:material_lots"

_U64 = struct.Struct(">Q")
_M = TypeVar("_M", pb.Product, pb.Batch, pb.Party)


class Ledger(CodePools):
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

    # -- code records ------------------------------------------------------------------------------

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
