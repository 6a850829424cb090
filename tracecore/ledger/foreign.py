"""What partners tell a ledger: codes minted elsewhere (with their provenance), the business
documents events are part of, and parties named by a partner and recorded on first sight.

A code minted elsewhere is a code record like any other, flagged ``FLAG_FOREIGN`` with key id 0,
and its provenance (who minted it, who told us, when, how) in ``foreign_codes``. From then on it
goes through the lifecycle as our own codes do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.codes import Code, Scheme
from tracecore.errors import AlreadyExists, FailedPrecondition
from tracecore.events import Document
from tracecore.ledger.contents import custody_moves, stored_rows
from tracecore.ledger.counters import Tally
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.oversight import RegionTally
from tracecore.ledger.records import FLAG_FOREIGN, CodeRecord, ref_key, ref_of, u64
from tracecore.ledger.store import Ledger
from tracecore.pack_checks import UNCOUNTED
from tracecore.status import Status

UNIT = 1


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who minted codes recorded here, who told us about them, and how."""

    minted_by: str = ""
    told_by: str = ""
    via: str = "register"

    def record(self, now_ms: int) -> bytes:
        return lpb.ForeignCodeRecord(minted_by=self.minted_by, told_by=self.told_by,
                                     recorded_at_ms=now_ms, via=self.via).SerializeToString()


@dataclass(slots=True)
class Registered:
    """What one registration did: codes recorded, codes already known, codes refused (why)."""

    registered: int = 0
    known: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def mints(ledger: Ledger, txn: Txn, product: str) -> bool:
    """Whether this tenant has minted codes of the product: its codes must then be signed here,
    and one that is not is a forgery or a typo, never a code minted elsewhere."""
    if not product:
        return False  # a logistic unit (SSCC): no product, nothing minted under one
    cursor = txn.cursor(db=ledger.db["minted"])
    prefix = product.encode()
    if not cursor.set_range(prefix):
        return False
    key = bytes(cursor.key())
    return key.startswith(prefix) and len(key) == len(prefix) + 2


def product_ref(ledger: Ledger, txn: Txn, product: str) -> int:
    """The ref of a registered product, 0 when the tenant has not registered it (another
    company's product it only handles)."""
    data = txn.get(product.encode(), db=ledger.db["product_ids"]) if product else None
    return ref_of(data) if data is not None else 0


def unregistered_product(code: Code) -> pb.Product:
    """Another company's product the tenant has not registered: its identifier, nothing more."""
    if code.scheme is Scheme.SSCC:
        return pb.Product()  # a logistic unit is no trade item
    return (pb.Product(gtin=code.product) if code.scheme is Scheme.GS1
            else pb.Product(nmpa_id=code.product))


def new_record(product: int, status: Status, now_ms: int, *, level: int = UNIT,
               holder: int = 0, region: int = 0, batch: int = 0, flags: int = 0) -> CodeRecord:
    """The record of a code minted elsewhere, on first sight."""
    return CodeRecord(status, level or UNIT, 0, product, batch, 0, holder, region, now_ms, now_ms,
                      0, flags | FLAG_FOREIGN)


def register(ledger: Ledger, codes: Sequence[Code], provenance: Provenance, status: Status,
             now_ms: int) -> Registered:
    """Records codes minted elsewhere in one durable transaction; codes the ledger knows are
    left as they are, codes of a product this tenant mints are refused."""

    def fn(txn: Txn) -> Registered:
        out = Registered()
        products: dict[str, tuple[bool, int]] = {}
        tally = Tally()
        fresh: dict[bytes, CodeRecord] = {}
        prov = provenance.record(now_ms)
        get = txn.get
        stored = ledger.codes.stored
        codes_db = ledger.db["codes"]
        for code in codes:
            found = products.get(code.product)
            if found is None:
                found = products[code.product] = (mints(ledger, txn, code.product),
                                                   product_ref(ledger, txn, code.product))
            own, ref = found
            if own:
                out.refused.append((code.text(), "this tenant mints this product's codes, and "
                                    "this one is not signed here"))
                continue
            key = code.key()
            if key in fresh or get(stored(key), db=codes_db) is not None:
                out.known += 1
                continue
            record = fresh[key] = new_record(ref, status, now_ms)
            if status is not Status.ISSUED:
                tally.move(None, record)
        if fresh:
            keys = sorted(zip(ledger.codes.stored_many(fresh), fresh.values(), strict=True))
            txn.cursor(db=codes_db).putmulti([(k, r.pack()) for k, r in keys])
            txn.cursor(db=ledger.db["foreign_codes"]).putmulti([(k, prov) for k, _ in keys])
            tally.write(txn, ledger.db["counters"])
        out.registered = len(fresh)
        return out

    return ledger.env.write(fn)


def provenance_of(ledger: Ledger, txn: Txn, key: bytes) -> lpb.ForeignCodeRecord | None:
    db = _optional(ledger, "foreign_codes")
    data = txn.get(ledger.codes.stored(key), db=db) if db is not None else None
    return lpb.ForeignCodeRecord.FromString(bytes(data)) if data is not None else None


# -- business documents -------------------------------------------------------------------

def index_documents(ledger: Ledger, txn: Txn, seq: int, documents: Iterable[pb.BusinessDocument]
                    ) -> None:
    """Indexes an event under each business document it is part of."""
    db = ledger.db["documents"]
    for d in documents:
        txn.put(Document(d.type, d.id).key(), _seq(seq), db=db, dupdata=True)


def events_of_document(ledger: Ledger, txn: Txn, document: Document) -> list[int]:
    """Sequences of the events that are part of a business document, in ledger order."""
    db = _optional(ledger, "documents")
    if db is None:
        return []
    cursor = txn.cursor(db=db)
    if not cursor.set_key(document.key()):
        return []
    return [u64(v) for v in cursor.iternext_dup()]


def open_late(ledger: Ledger) -> None:
    """Opens, in a reader, this module's databases that a writer created after the reader
    opened the ledger. Call it before beginning a read transaction: LMDB lets a transaction use
    only the database handles opened before it began."""
    for name in ("foreign_codes", "documents"):
        _optional(ledger, name)


def _optional(ledger: Ledger, name: str) -> Database | None:
    """A database a reader may find missing: the ledger's writer has not opened it since the
    release that added it (nothing is in it yet)."""
    try:
        return ledger.db[name]
    except KeyError:
        return None


def _seq(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


# -- external parties ---------------------------------------------------------------------

def record_external(ledger: Ledger, txn: Txn, party_id: str, *, identifier: str, gln: str,
                    told_by: str, now_ms: int) -> int:
    """The ref of a party named by a partner: the registered one, else one recorded now as
    external (never a refusal)."""
    data = txn.get(party_id.encode(), db=ledger.db["party_ids"])
    if data is not None:
        return ref_of(data)
    party = pb.Party(party_id=party_id, name=identifier, gln=gln, external=True,
                     told_by=told_by, identifier=identifier, created_at_ms=now_ms)
    ref = ledger.next_ref(txn, b"party")
    txn.put(ref_key(ref), party.SerializeToString(), db=ledger.db["parties"])
    txn.put(party_id.encode(), ref_key(ref), db=ledger.db["party_ids"])
    return ref


def confirm(ledger: Ledger, party_id: str) -> pb.Party:
    """An external party confirmed as this tenant's party (it stops being external)."""

    def fn(txn: Txn) -> pb.Party:
        ref, party = ledger.party_in(txn, party_id)
        if not party.external:
            raise AlreadyExists(f"party {party_id} is registered, not external", field="party_id")
        if party.merged_into:
            raise FailedPrecondition(f"party {party_id} was merged into {party.merged_into}")
        party.external = False
        txn.put(ref_key(ref), party.SerializeToString(), db=ledger.db["parties"])
        return party

    return ledger.env.write(fn)


def merge(ledger: Ledger, external: str, into: str) -> tuple[pb.Party, int]:
    """An external party folded into a registered one: its id resolves to that party from now on,
    and the packs it holds are held by that party. (The party it merged into, packs moved.)"""

    def fn(txn: Txn) -> tuple[pb.Party, int]:
        ext_ref, ext = ledger.party_in(txn, external, "external")
        if not ext.external or ext.merged_into:
            raise FailedPrecondition(f"party {external} is not an external party", field="external")
        into_ref, target = ledger.party_in(txn, into, "into")
        if target.external:
            raise FailedPrecondition(f"party {into} is external itself: confirm it first",
                                     field="into")
        moved = _move_holdings(ledger, txn, ext_ref, into_ref, int(target.region or 0))
        ext.merged_into = into
        txn.put(ref_key(ext_ref), ext.SerializeToString(), db=ledger.db["parties"])
        txn.put(external.encode(), ref_key(into_ref), db=ledger.db["party_ids"])
        return target, moved

    return ledger.env.write(fn)


def _move_holdings(ledger: Ledger, txn: Txn, old: int, new: int, region: int) -> int:
    """Re-points the code records held by ``old`` to ``new``, counters with them; a pack inside
    a container goes with its top container (``tracecore.ledger.contents``), whose contents'
    counters move with it. One pass over the codes: a merge is a rare admin act, and no index
    by holder is kept for it. The number of packs moved, contents included."""
    tally, regions = Tally(), RegionTally()
    changed: list[tuple[bytes, bytes]] = []
    moved = 0
    for key, data in txn.cursor(db=ledger.db["codes"]):
        record = CodeRecord.unpack(data)
        if record.holder_ref != old or txn.get(key, db=ledger.db["parents"]) is not None:
            continue
        after = record.evolve(holder_ref=new, region=region or record.region)
        if record.status not in UNCOUNTED:
            tally.move(record, after)
        if record.status is not Status.ISSUED:
            regions.move(record, after)  # a batch's regions keep its voided codes too
        changed.append((bytes(key), after.pack()))
        moved += 1
        if record.level > 1:
            inside = stored_rows(txn, ledger.db["contents"], bytes(key))
            moves = [m for m in custody_moves(inside, record, after)
                     if m[1][3] not in UNCOUNTED]
            tally.move_many(moves)
            regions.move_many(moves)
            moved += sum(inside.values())
    if changed:
        txn.cursor(db=ledger.db["codes"]).putmulti(changed)
        tally.write(txn, ledger.db["counters"])
        regions.write(txn, ledger.db["batch_regions"])
    return moved

