"""A verification call's answer rows: the fields of a code record a verdict needs, the alerts
each status brings, and the loop that answers each input in order (``Call.row`` per input;
compiled in tracecore/_speedups/_answers.pyx, whose reference is ``answer_rows_reference``).
``tracecore.verification.Verifier`` runs it for every call but a consumer's scan of one code."""

from __future__ import annotations

import datetime as dt
import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pharmatrace.v1 import common_pb2 as pb

from tracecore import gs1
from tracecore._speedups import load
from tracecore.answers import (
    NOT_MINTED,
    Alert,
    Answers,
    ScanContext,
    Verdict,
    append_row,
    unused_sscc,
)
from tracecore.codes import Code, Scheme
from tracecore.errors import ParseError
from tracecore.ledger import foreign
from tracecore.ledger.contents import CUSTODY_FLAGS, top_record
from tracecore.ledger.env import Txn
from tracecore.ledger.oversight import Holds
from tracecore.ledger.records import CODE_RECORD_SIZE, FLAG_FOREIGN, FLAG_IN_TRANSIT, ref_of
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.tenants import Tenant
from tracecore.oversight import (
    ENDED,
    RECALLABLE,
    SUPPLY_CHAIN_PURPOSES,
    AlertSource,
    Checks,
    CloneReason,
    Raised,
    RegionRule,
    clone,
    diversion,
)
from tracecore.schemes.base import Scan
from tracecore.status import DECOMMISSIONED, Status

# status, flags, key id, product ref, batch ref, holder ref, region: the fields of a code
# record a verdict needs.
VERDICT_FIELDS = struct.Struct("<BxBxHxxIIxxxxII")
assert VERDICT_FIELDS.size <= CODE_RECORD_SIZE


_STATUS_ALERTS = {
    Status.ISSUED: Alert.NOT_COMMISSIONED.bit,
    Status.VOIDED: Alert.VOIDED.bit,
    Status.RECALLED: Alert.RECALLED.bit,
    Status.WITHDRAWN: Alert.WITHDRAWN.bit,
    Status.DESTROYED: Alert.DESTROYED_OR_STOLEN.bit,
    Status.STOLEN: Alert.DESTROYED_OR_STOLEN.bit,
    **{s: Alert.ALREADY_DECOMMISSIONED.bit for s in DECOMMISSIONED},
}
STATUS_ALERT_BY_NUMBER = [_STATUS_ALERTS.get(n, 0) for n in range(256)]  # type: ignore[call-overload]
RECALLABLE_NUMBERS = frozenset(int(s) for s in RECALLABLE)
ENDED_NUMBERS = frozenset(int(s) for s in ENDED)
DIVERSION = Alert.DIVERSION.bit
EXPIRED = Alert.EXPIRED.bit
DATA_MISMATCH = Alert.DATA_MISMATCH.bit
CLONE = Alert.CLONE_SUSPECTED.bit
_SSCC = Scheme.SSCC
#: Lot and expiry comparisons a verifier keeps: a few per batch on the market.
_MISMATCHES_KEPT = 4096


@dataclass(frozen=True, slots=True)
class BatchInfo:
    batch: pb.Batch
    expires_on: dt.date
    rule: RegionRule | None     # None: sold anywhere


class Kept:
    """What a verifier keeps of its tenant's ledger from call to call (each product and batch
    record as looked up, which parties are plants, each scanned lot and expiry's comparison with
    its batch), and the rules a row reads them by."""

    def __init__(self, tenant: Tenant, checks: Checks) -> None:
        self.tenant = tenant
        self.checks = checks
        self.products: dict[int, pb.Product] = {}
        self.batches: dict[int, BatchInfo] = {}
        self.plants: dict[int, bool] = {}
        # (batch ref, scanned lot, scanned expiry) -> whether they differ from the batch's.
        self.mismatches: dict[tuple[int, str | None, str | None], bool] = {}

    def mismatch(self, batch_ref: int, scan: Scan, info: BatchInfo) -> bool:
        """Whether the scanned lot or expiry differs from the batch's, each (batch, lot, expiry)
        compared once (a pallet's packs carry a few such pairs), at most ``_MISMATCHES_KEPT``
        kept: scans may carry any lot text."""
        seen = (batch_ref, scan.lot, scan.expiry)
        mismatch = self.mismatches.get(seen)
        if mismatch is None:
            if len(self.mismatches) >= _MISMATCHES_KEPT:
                self.mismatches.clear()
            mismatch = self.mismatches[seen] = _mismatch(scan.lot, scan.expiry, info)
        return mismatch

    def batch_entry(self, txn: Txn, batch_ref: int, product_ref: int, holds: Holds,
                     out: Answers, today: dt.date, region: int
                    ) -> tuple[int, int, BatchInfo, int]:
        """What holds for every code of a batch in this call: its row in the batch table, the
        alerts it brings (expired; scanned outside its regions), and a recall or withdrawal."""
        info = self.batch(txn, batch_ref)
        out.batches.append(info.batch)
        mask = Alert.EXPIRED.bit if info.expires_on < today else 0
        if (region and self.checks.diversion and info.rule is not None
                and not info.rule.allows(region)):
            mask |= DIVERSION
        hold = holds.hold_status(batch_ref, product_ref)
        return len(out.batches) - 1, mask, info, int(hold) if hold is not None else 0

    def diversion(self, key: bytes, code: str, info: BatchInfo, context: ScanContext,
                   now_ms: int, status: int) -> Raised:
        assert info.rule is not None
        return diversion(key, code, source=AlertSource.SCAN, at_ms=now_ms, units=1,
                         product=info.batch.product, lot=info.batch.lot, region=context.region,
                         party_id=context.party_id, rule=info.rule, status=Status(status))

    def custody(self, txn: Txn, stored: bytes, flags: int, holder_ref: int, region: int
                 ) -> tuple[int, int, int]:
        """(flags, holder ref, region) of a pack (``stored``: its stored code key) whose record
        holds these: its top container's custody while it is inside one
        (``tracecore.ledger.contents``)."""
        held = top_record(self.tenant.ledger, txn, stored)
        if held is None:
            return flags, holder_ref, region
        return ((flags & ~CUSTODY_FLAGS) | (held.flags & CUSTODY_FLAGS), held.holder_ref,
                held.region)

    def received_there(self, txn: Txn, flags: int, holder_ref: int) -> bool:
        """Whether a pack's recorded region is where a party received or dispensed it: not in
        transit (the region is still where it left), not at the plant that made it."""
        if flags & FLAG_IN_TRANSIT or not holder_ref:
            return False
        plant = self.plants.get(holder_ref)
        if plant is None:
            party = self.tenant.ledger.party_by_ref(txn, holder_ref)
            plant = self.plants[holder_ref] = party.kind == pb.PARTY_KIND_PLANT
        return not plant

    def party_ref(self, txn: Txn, party_id: str) -> int:
        """The scanning party's ref, 0 when it gave none or is not registered."""
        if not party_id:
            return 0
        data = txn.get(party_id.encode(), db=self.tenant.ledger.db["party_ids"])
        return ref_of(data) if data is not None else 0

    def product(self, txn: Txn, ref: int, code: Code) -> pb.Product:
        if not ref:
            return foreign.unregistered_product(code)
        product = self.products.get(ref)
        if product is None:
            product = self.products[ref] = self.tenant.ledger.product_by_ref(txn, ref)
        return product

    def batch(self, txn: Txn, ref: int) -> BatchInfo:
        info = self.batches.get(ref)
        if info is None:
            batch = self.tenant.ledger.batch_by_ref(txn, ref)
            rule = RegionRule(batch.authorised_regions, "batch") if batch.authorised_regions \
                else None
            info = self.batches[ref] = BatchInfo(batch, dt.date.fromisoformat(batch.expires_on),
                                                   rule)
        return info



class Call:
    """One verification call while its rows are answered: the answers, the read transaction,
    and what is worked out once per call (each batch's and product's entry, each scanned lot
    and expiry's comparison with its batch), plus what the rows leave for after the loop."""

    # What the compiled loop (tracecore/_speedups/_answers.pyx) reads of the rules.
    PARSE_ERROR = ParseError
    GENUINE = Verdict.GENUINE
    RECALLABLE = bytes(n in RECALLABLE_NUMBERS for n in range(256))
    ENDED = bytes(n in ENDED_NUMBERS for n in range(256))
    STATUS_ALERTS = tuple(STATUS_ALERT_BY_NUMBER)
    DATA_MISMATCH = DATA_MISMATCH
    DIVERSION = DIVERSION

    def __init__(self, kept: Kept, out: Answers, txn: Txn, context: ScanContext,
                 now_ms: int, today: dt.date, revoked: frozenset[int]) -> None:
        ledger = kept.tenant.ledger
        checks = kept.checks
        self.kept, self.out, self.txn = kept, out, txn
        self.get, self.codes_db = txn.get, ledger.db["codes"]
        self.parents_db = ledger.db["parents"]
        self.holds = Holds(ledger, txn)
        self.context, self.now_ms, self.today = context, now_ms, today
        self.region = context.region
        self.revoked = revoked
        self.diverted = checks.diversion
        self.supply_chain = checks.clones and bool(
            context.party_id or context.purpose in SUPPLY_CHAIN_PURPOSES)
        self.scanner = kept.party_ref(txn, context.party_id) if self.supply_chain else 0
        # batch ref -> (index in out.batches, alerts of the whole batch, info, hold status)
        self.batches: dict[int, tuple[int, int, BatchInfo, int]] = {}
        # Kept across calls: a comparison holds as long as the batch's info it was made from,
        # which is kept for the verifier's life (``Kept.batch``).
        self.mismatches = kept.mismatches
        self.product_index: dict[int, int] = {}
        self.raised: list[Raised] = []
        self.failed: list[int] = []
        self.genuine_keys: list[bytes] = []
        self.genuine_rows: list[int] = []

    def malformed(self, row: int, error: ParseError) -> None:
        append_row(self.out, Verdict.INVALID_FORMAT, "", error.reason)
        self.failed.append(row)

    def row(self, row: int, scan: Scan, key_id: int | None, key: bytes, stored: bytes,
            data: bytes | memoryview | None) -> None:
        """The answer of one input that parsed: ``key_id``, the signing key its tag verifies
        under (None: none); ``key``, its ledger key; ``data``, its record (None: not in the
        ledger)."""
        out, txn, kept = self.out, self.txn, self.kept
        ledger = kept.tenant.ledger
        code = scan.code
        if key_id is None and code.scheme is _SSCC:
            if data is None:
                unused_sscc(out, code, SsccPools(ledger).allocated_in(txn, code.serial))
                return
            if not data[2] & FLAG_FOREIGN:
                key_id = 0  # tagless: a record of ours means it came from our pools
        if key_id is None and (data is None or not data[2] & FLAG_FOREIGN):
            append_row(out, Verdict.BAD_SIGNATURE, code.text(), NOT_MINTED)
            self.failed.append(row)
            return
        if data is None:
            append_row(out, Verdict.UNKNOWN, code.text(), "signed, but not in the ledger")
            return
        (status, flags, record_key_id, product_ref, batch_ref, holder_ref,
         record_region) = VERDICT_FIELDS.unpack_from(data)
        recorded = status
        b_index = -1
        mask = 0
        info = None
        context, now_ms = self.context, self.now_ms
        if batch_ref:
            b_index, mask, info, hold = self._batch_entry(batch_ref, product_ref)
            if hold and status in RECALLABLE_NUMBERS:
                status = hold
            if self.kept.mismatch(batch_ref, scan, info):
                mask |= DATA_MISMATCH
            if mask & DIVERSION:
                self.raised.append(kept.diversion(key, code.text(), info, context, now_ms,
                                                       status))
            elif self.diverted and info.rule is not None:
                if self.get(stored, db=self.parents_db) is not None:
                    flags, holder_ref, record_region = kept.custody(
                        txn, stored, flags, holder_ref, record_region)
                if (record_region and not info.rule.allows(record_region)
                        and kept.received_there(txn, flags, holder_ref)):
                    mask |= DIVERSION  # received or dispensed outside its regions
        if self.supply_chain and recorded in ENDED_NUMBERS and (
                not self.scanner or kept.custody(txn, stored, flags, holder_ref,
                                                      record_region)[1] != self.scanner):
            mask |= CLONE
            self.raised.append(clone(
                key, code.text(), CloneReason.SEEN_AFTER_END, at_ms=now_ms,
                product=info.batch.product if info else "",
                lot=info.batch.lot if info else "", region=self.region,
                party_id=context.party_id, status=Status(recorded), scan_count=0))
        mask |= STATUS_ALERT_BY_NUMBER[status]
        verdict = Verdict.GENUINE
        reason = ""
        if key_id is None:
            verdict = Verdict.KNOWN_FOREIGN
            minted_by = foreign.provenance_of(ledger, txn, key)
            out.minted_by[row] = minted_by.minted_by if minted_by else ""
            reason = "known to this ledger, not signed by us" + (
                f": minted by {out.minted_by[row]}" if out.minted_by[row] else "")
        elif record_key_id in self.revoked:
            verdict = Verdict.BAD_SIGNATURE
            reason = "minted under a revoked signing key"
            mask |= Alert.KEY_REVOKED.bit
        p_index = self._product_index(product_ref, code)
        out.verdicts.append(verdict)
        out.statuses.append(status)
        out.alert_masks.append(mask)
        out.scan_counts.append(0)
        out.first_verified_ms.append(0)
        out.batch_indexes.append(b_index)
        out.product_indexes.append(p_index)
        out.levels.append(data[1])
        out.codes.append(code)
        out.reasons.append(reason)
        self.genuine_keys.append(key)
        self.genuine_rows.append(row)

    def make_entries(self, scan: Scan, stored: bytes) -> None:
        """The entries of a signed code's batch, product and scanned lot and expiry (``stored``:
        the key LMDB holds it under), made before the rows are answered: as ``row`` makes them
        for a signed code in the ledger, in the same order, so that the compiled loop can
        answer the first row of a batch or product too."""
        data = self.get(stored, db=self.codes_db)
        if data is None or len(data) < VERDICT_FIELDS.size:
            return
        _, _, _, product_ref, batch_ref, _, _ = VERDICT_FIELDS.unpack_from(data)
        if batch_ref:
            info = self._batch_entry(batch_ref, product_ref)[2]
            self.kept.mismatch(batch_ref, scan, info)
        if product_ref:
            self._product_index(product_ref, scan.code)

    def _batch_entry(self, batch_ref: int, product_ref: int
                     ) -> tuple[int, int, BatchInfo, int]:
        entry = self.batches.get(batch_ref)
        if entry is None:
            entry = self.batches[batch_ref] = self.kept.batch_entry(
                self.txn, batch_ref, product_ref, self.holds, self.out, self.today, self.region)
        return entry


    def _product_index(self, product_ref: int, code: Code) -> int:
        """The product's index in the answers' product table, added at its first row."""
        out = self.out
        p_index = self.product_index.get(product_ref) if product_ref else None
        if p_index is None:
            p_index = len(out.products)
            if product_ref:
                self.product_index[product_ref] = p_index
            out.products.append(self.kept.product(self.txn, product_ref, code))
        return p_index


def answer_rows_reference(call: Call, scans: Sequence[Scan | ParseError],
                          key_ids: Sequence[int | None], keys: Sequence[bytes],
                          stored: Sequence[bytes]) -> None:
    """Each input's answer row, in order (``Call.row``, ``Call.malformed``); ``key_ids``,
    ``keys`` and ``stored`` (the keys LMDB holds) are those of the inputs that parsed."""
    get, db = call.get, call.codes_db
    i = 0
    for row, scan in enumerate(scans):
        if isinstance(scan, ParseError):
            call.malformed(row, scan)
            continue
        call.row(row, scan, key_ids[i], keys[i], stored[i], get(stored[i], db=db))
        i += 1


# The compiled twin of the loop above (tracecore/_speedups/_answers.pyx), else that loop.
_compiled = load("_answers")
answer_rows = answer_rows_reference if _compiled is None else _compiled.answer_rows


def _mismatch(lot: str | None, expiry: str | None, info: BatchInfo) -> bool:
    """The scanned lot or expiry differs from the batch on record. A day of 00 means the month."""
    if lot is not None and lot != info.batch.lot:
        return True
    if expiry is None:
        return False
    scanned = _expiry_date(expiry)
    if expiry.endswith("00"):
        return (scanned.year, scanned.month) != (info.expires_on.year, info.expires_on.month)
    return scanned != info.expires_on


@functools.lru_cache(maxsize=4096)
def _expiry_date(yymmdd: str) -> dt.date:
    """A scanned expiry as a date; a pallet's packs share a few, so each is worked out once."""
    return gs1.expiry_date(yymmdd)
