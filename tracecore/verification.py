"""Verification: is this pack genuine, what is its status, and what should the scanner know?

One loop answers one code or a pallet of them: parse, check the tag against the tenant's keys
(no storage touched for forgeries and typos), look the code up in the ledger, count the scan.
Answers are columnar so a batch of 100,000 costs lists, not objects. What depends only on the
batch (expiry, recall, a scan outside its regions) is worked out once per batch per call; per
code there is a lookup and a few comparisons.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import gt

from pharmatrace.v1 import common_pb2 as pb

from tracecore import gs1
from tracecore._speedups import load
from tracecore.answers import NOT_MINTED as NOT_MINTED
from tracecore.answers import Alert as Alert
from tracecore.answers import Answers as Answers
from tracecore.answers import CodeTexts, append_row, unused_sscc
from tracecore.answers import ScanContext as ScanContext
from tracecore.answers import Verdict as Verdict
from tracecore.answers import alerts_of as alerts_of
from tracecore.answers import not_minted as not_minted
from tracecore.codes import Code, Scheme, parse, parse_many, parse_one, parsed_codes
from tracecore.errors import ParseError
from tracecore.ledger import foreign, history
from tracecore.ledger.alerts import AlertBook
from tracecore.ledger.contents import CUSTODY_FLAGS, top_record
from tracecore.ledger.env import Txn
from tracecore.ledger.observations import Located, Observations, Tally
from tracecore.ledger.oversight import Holds
from tracecore.ledger.records import CODE_RECORD_SIZE, FLAG_FOREIGN, FLAG_IN_TRANSIT, ref_of
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.tenants import Tenant
from tracecore.mac import Mac
from tracecore.minting import check_tags
from tracecore.oversight import (
    ENDED,
    RECALLABLE,
    SUPPLY_CHAIN_PURPOSES,
    AlertSource,
    Checks,
    CloneReason,
    Raised,
    RegionRule,
    Travel,
    clone,
    diversion,
)
from tracecore.schemes.base import Scan
from tracecore.schemes.repair import Repaired, hint, readings
from tracecore.status import DECOMMISSIONED, Status

# status, flags, key id, product ref, batch ref, holder ref, region: the fields of a code
# record a verdict needs.
_VERDICT_FIELDS = struct.Struct("<BxBxHxxIIxxxxII")
assert _VERDICT_FIELDS.size <= CODE_RECORD_SIZE


_STATUS_ALERTS = {
    Status.ISSUED: Alert.NOT_COMMISSIONED.bit,
    Status.VOIDED: Alert.VOIDED.bit,
    Status.RECALLED: Alert.RECALLED.bit,
    Status.WITHDRAWN: Alert.WITHDRAWN.bit,
    Status.DESTROYED: Alert.DESTROYED_OR_STOLEN.bit,
    Status.STOLEN: Alert.DESTROYED_OR_STOLEN.bit,
    **{s: Alert.ALREADY_DECOMMISSIONED.bit for s in DECOMMISSIONED},
}
_STATUS_ALERT_BY_NUMBER = [_STATUS_ALERTS.get(n, 0) for n in range(256)]  # type: ignore[call-overload]
_RECALLABLE = frozenset(int(s) for s in RECALLABLE)
_ENDED = frozenset(int(s) for s in ENDED)
_DIVERSION = Alert.DIVERSION.bit
_EXPIRED = Alert.EXPIRED.bit
_DATA_MISMATCH = Alert.DATA_MISMATCH.bit
_CLONE = Alert.CLONE_SUSPECTED.bit
_SSCC = Scheme.SSCC
_DAY_MS = 86_400_000
#: Lot and expiry comparisons a verifier keeps: a few per batch on the market.
_MISMATCHES_KEPT = 4096


@dataclass(frozen=True, slots=True)
class _BatchInfo:
    batch: pb.Batch
    expires_on: dt.date
    rule: RegionRule | None     # None: sold anywhere


class Verifier:
    """Answers verification for one tenant; one per worker process."""

    def __init__(self, tenant: Tenant, observations: Observations,
                 alerts: AlertBook | None = None, checks: Checks | None = None, *,
                 reference: bool = False) -> None:
        """``reference``: answer each row through ``answer_rows_reference`` even where the
        compiled loop is built (tests hold the two to the same answers)."""
        self._tenant = tenant
        self._reference = reference
        self._observations = observations
        self._alerts = alerts
        self._checks = checks or Checks()
        self._travel = Travel(self._checks.max_speed_kmh)
        self._products: dict[int, pb.Product] = {}
        self._batches: dict[int, _BatchInfo] = {}
        self._plants: dict[int, bool] = {}
        # (batch ref, scanned lot, scanned expiry) -> whether they differ from the batch's.
        self._mismatches: dict[tuple[int, str | None, str | None], bool] = {}

    def replaced_by(self, code: str) -> str:
        """The canonical text of the code that replaced a voided code's damaged label; "" when
        it was not replaced."""
        ledger = self._tenant.ledger
        with ledger.env.read() as txn:
            new = history.replacement(ledger, txn, parse(code).code.key())[0]
        return new.text() if new is not None else ""

    def verify(self, texts: Sequence[str | bytes], context: ScanContext, now_ms: int,
               repair: bool = True, client: bytes = b"") -> Answers:
        """Answers for every input; a malformed one gets INVALID_FORMAT, never an exception.
        With ``repair``, an input that does not parse or whose tag does not verify is read
        again as a scrambled scan (see ``tracecore.schemes.repair``): after the failure only,
        so well-formed codes pay nothing for it. ``client``, a public scan's client tag
        (``tracecore.scan_clients``): a code it already scanned that day is answered with its
        statistics but neither counted again nor checked for clones."""
        tenant = self._tenant
        keys = tenant.keys
        macs = keys.macs()
        revoked = keys.revoked()
        ledger = tenant.ledger
        today = _utc_day(now_ms // _DAY_MS)
        out = Answers()
        scans = parse_many(texts)
        parsed, codes, code_keys = parsed_codes(scans)
        key_ids = check_tags(codes, macs, keys.native_macs())
        foreign.open_late(ledger)
        # Each code's ledger key beside the key LMDB holds, all encrypted in one call.
        stored = ledger.codes.stored_many(code_keys)
        with ledger.env.read() as txn:
            call = _Call(self, out, txn, context, now_ms, today, revoked)
            if self._reference or _compiled is None:
                answer_rows_reference(call, scans, key_ids, code_keys, stored)
            else:
                if len(parsed) == 1 and key_ids[0] is not None:
                    # One code: its entries made first, so that the compiled loop answers it.
                    call.make_entries(parsed[0], stored[0])
                _answer_rows(call, scans, key_ids, code_keys, stored)
        if call.genuine_keys:
            self._count(out, call.genuine_keys, call.genuine_rows, context, now_ms, client,
                        call.raised)
        elif call.raised and self._alerts is not None:
            self._alerts.buffer(call.raised)
        if call.failed and repair:
            self._repair(out, texts, call.failed, context, now_ms, macs, client)
        return out

    def verify_one(self, text: str | bytes, context: ScanContext, now_ms: int,
                   client: bytes = b"") -> Answers:
        """``verify([text], context, now_ms, client=client)``, the same answer and the same scan
        counted: a unary Verify, a check page. The usual scan (a signed code of ours in the
        ledger, under a key not revoked, of a known batch, scanned with no place and by no party
        of the supply chain: a consumer's) is answered without the machinery of a batch; any
        other goes through ``verify``."""
        if not self._reference:
            usual = self._usual(text, context, now_ms)
            if usual is not None:
                out, key = usual
                self._count(out, [key], [0], context, now_ms, client, [])
                return out
        return self.verify([text], context, now_ms, client=client)

    def _usual(self, text: str | bytes, context: ScanContext, now_ms: int
               ) -> tuple[Answers, bytes] | None:
        """The answer of the usual scan before its statistics, and its ledger key; None for any
        other scan, which ``_Call.row`` answers. Nothing is counted or raised here: the usual scan
        raises no alert before its statistics (a diversion seen where the pack was received is
        an answer's alert, as ``_Call.row`` gives it, not a new alert)."""
        if context.party_id or context.region or context.purpose in SUPPLY_CHAIN_PURPOSES:
            return None  # a place to check for diversion, a party to check for clones
        try:
            scan = parse_one(text)
        except ParseError:
            return None
        tenant = self._tenant
        keys = tenant.keys
        code = scan.code
        if check_tags([code], keys.macs(), keys.native_macs())[0] is None:
            return None
        ledger = tenant.ledger
        key = code.key()
        stored = ledger.codes.stored(key)
        with ledger.env.read() as txn:
            data = txn.get(stored, db=ledger.db["codes"])
            if data is None or len(data) < _VERDICT_FIELDS.size or data[2] & FLAG_FOREIGN:
                return None
            (status, flags, key_id, product_ref, batch_ref, holder_ref,
             region) = _VERDICT_FIELDS.unpack_from(data)
            if not batch_ref or key_id in keys.revoked():
                return None
            info = self._batch(txn, batch_ref)
            mask = 0
            if info.rule is not None and self._checks.diversion:
                # Sold in some regions only: where the pack was received or dispensed.
                if txn.get(stored, db=ledger.db["parents"]) is not None:
                    flags, holder_ref, region = self._custody(txn, stored, flags, holder_ref,
                                                              region)
                if (region and not info.rule.allows(region)
                        and self._received_there(txn, flags, holder_ref)):
                    mask = _DIVERSION
            hold = Holds(ledger, txn).hold_status(batch_ref, product_ref) \
                if status in _RECALLABLE else None
            product = self._product(txn, product_ref, code)
            level = data[1]
        if hold is not None:
            status = int(hold)
        mask |= _STATUS_ALERT_BY_NUMBER[status]
        if info.expires_on < _utc_day(now_ms // _DAY_MS):
            mask |= _EXPIRED
        if (scan.lot is not None or scan.expiry is not None) and _kept_mismatch(
                self._mismatches, batch_ref, scan, info):
            mask |= _DATA_MISMATCH
        out = Answers(verdicts=[Verdict.GENUINE], statuses=[status], alert_masks=[mask],
                      scan_counts=[0], first_verified_ms=[0], batch_indexes=[0],
                      product_indexes=[0], levels=[level], codes=CodeTexts([code]),
                      reasons=[""], batches=[info.batch], products=[product])
        return out, key

    def _count(self, out: Answers, keys: list[bytes], rows: list[int], context: ScanContext,
               now_ms: int, client: bytes, raised: list[Raised]) -> None:
        """The scans of the genuine rows (``keys``, their ledger keys) counted, their
        statistics and clone checks into the answers, and the alerts raised buffered."""
        tally = self._observations.tally(keys, now_ms, context.region, client)
        if tally.counted is not None:
            keys, rows = _standing(out, keys, rows, tally)
        if keys:
            _counted(out, rows, tally.located)
            if self._checks.clones:
                self._check_clones(out, keys, rows, tally.located, context, now_ms, raised)
        if raised and self._alerts is not None:
            self._alerts.buffer(raised)

    def _repair(self, out: Answers, texts: Sequence[str | bytes], rows: list[int],
                context: ScanContext, now_ms: int, macs: Mapping[int, Mac],
                client: bytes = b"") -> None:
        """Failed rows read again as scrambled scans: where exactly one reading's tag
        verifies, the row answers for that code and says what was repaired; elsewhere it says
        what looks wrong."""
        def signed(scan: Scan) -> bool:
            return check_tags([scan.code], macs)[0] is not None

        found: dict[int, Repaired] = {}
        for row in rows:
            raw = texts[row]
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            candidates = readings(text, signed)
            if len(candidates) == 1:
                found[row] = candidates[0]
            elif note := hint(text, candidates):
                out.hints[row] = note
        if not found:
            return
        again = self.verify([r.text for r in found.values()], context, now_ms, repair=False,
                            client=client)
        batch_offset, product_offset = len(out.batches), len(out.products)
        out.batches.extend(again.batches)
        out.products.extend(again.products)
        for i, (row, repaired) in enumerate(found.items()):
            out.verdicts[row] = again.verdicts[i]
            out.statuses[row] = again.statuses[i]
            out.alert_masks[row] = again.alert_masks[i]
            out.scan_counts[row] = again.scan_counts[i]
            out.first_verified_ms[row] = again.first_verified_ms[i]
            if i in again.first_regions:
                out.first_regions[row] = again.first_regions[i]
            b, p = again.batch_indexes[i], again.product_indexes[i]
            out.batch_indexes[row] = b + batch_offset if b >= 0 else -1
            out.product_indexes[row] = p + product_offset if p >= 0 else -1
            out.levels[row] = again.levels[i]
            out.codes[row] = again.codes[i]
            out.reasons[row] = again.reasons[i]
            out.repairs[row] = repaired.note

    def _check_clones(self, out: Answers, keys: list[bytes], rows: list[int],
                      located: Located, context: ScanContext, now_ms: int,
                      raised: list[Raised]) -> None:
        """The clone checks that need the scan statistics: too many scans, or a trip from the
        last place seen no pack could have made. Only the codes over the count or last seen
        elsewhere are looked at one by one."""
        counts, _, lasts_ms, last_regions, _ = located
        max_scans = self._checks.max_scans
        region = context.region
        if max(counts) <= max_scans and not (region and any(last_regions)):
            return  # no code over the count nor seen anywhere: most calls, checked in C
        travel = self._travel
        indexes = range(len(counts))
        suspects = set(compress(indexes, map(gt, counts, repeat(max_scans))))
        if region:
            suspects.update(i for i in compress(indexes, last_regions)
                            if last_regions[i] != region)
        for i in sorted(suspects):
            key, row, count = keys[i], rows[i], counts[i]
            last_ms, last_region = lasts_ms[i], last_regions[i]
            reasons = []
            if count > max_scans:
                reasons.append(CloneReason.TOO_MANY_SCANS)
            far = bool(region and last_region and last_region != region and travel.impossible(
                last_region, last_ms, region, now_ms))
            if far:
                reasons.append(CloneReason.TRAVEL)
            if not reasons:
                continue
            out.alert_masks[row] |= _CLONE
            b_index = out.batch_indexes[row]
            batch = out.batches[b_index] if b_index >= 0 else pb.Batch()
            for reason in reasons:
                raised.append(clone(
                    key, out.codes[row], reason, at_ms=now_ms, product=batch.product,
                    lot=batch.lot, region=region, party_id=context.party_id,
                    status=Status(out.statuses[row]), scan_count=count,
                    previous_region=last_region if far else 0,
                    previous_at_ms=last_ms if far else 0,
                    distance_km=travel.distance_km(last_region, region) if far else 0.0))

    def _batch_entry(self, txn: Txn, batch_ref: int, product_ref: int, holds: Holds,
                     out: Answers, today: dt.date, region: int
                     ) -> tuple[int, int, _BatchInfo, int]:
        """What holds for every code of a batch in this call: its row in the batch table, the
        alerts it brings (expired; scanned outside its regions), and a recall or withdrawal."""
        info = self._batch(txn, batch_ref)
        out.batches.append(info.batch)
        mask = Alert.EXPIRED.bit if info.expires_on < today else 0
        if (region and self._checks.diversion and info.rule is not None
                and not info.rule.allows(region)):
            mask |= _DIVERSION
        hold = holds.hold_status(batch_ref, product_ref)
        return len(out.batches) - 1, mask, info, int(hold) if hold is not None else 0

    def _diversion(self, key: bytes, code: str, info: _BatchInfo, context: ScanContext,
                   now_ms: int, status: int) -> Raised:
        assert info.rule is not None
        return diversion(key, code, source=AlertSource.SCAN, at_ms=now_ms, units=1,
                         product=info.batch.product, lot=info.batch.lot, region=context.region,
                         party_id=context.party_id, rule=info.rule, status=Status(status))

    def _custody(self, txn: Txn, stored: bytes, flags: int, holder_ref: int, region: int
                 ) -> tuple[int, int, int]:
        """(flags, holder ref, region) of a pack (``stored``: its stored code key) whose record
        holds these: its top container's custody while it is inside one
        (``tracecore.ledger.contents``)."""
        held = top_record(self._tenant.ledger, txn, stored)
        if held is None:
            return flags, holder_ref, region
        return ((flags & ~CUSTODY_FLAGS) | (held.flags & CUSTODY_FLAGS), held.holder_ref,
                held.region)

    def _received_there(self, txn: Txn, flags: int, holder_ref: int) -> bool:
        """Whether a pack's recorded region is where a party received or dispensed it: not in
        transit (the region is still where it left), not at the plant that made it."""
        if flags & FLAG_IN_TRANSIT or not holder_ref:
            return False
        plant = self._plants.get(holder_ref)
        if plant is None:
            party = self._tenant.ledger.party_by_ref(txn, holder_ref)
            plant = self._plants[holder_ref] = party.kind == pb.PARTY_KIND_PLANT
        return not plant

    def _party_ref(self, txn: Txn, party_id: str) -> int:
        """The scanning party's ref, 0 when it gave none or is not registered."""
        if not party_id:
            return 0
        data = txn.get(party_id.encode(), db=self._tenant.ledger.db["party_ids"])
        return ref_of(data) if data is not None else 0

    def _product(self, txn: Txn, ref: int, code: Code) -> pb.Product:
        if not ref:
            return foreign.unregistered_product(code)
        product = self._products.get(ref)
        if product is None:
            product = self._products[ref] = self._tenant.ledger.product_by_ref(txn, ref)
        return product

    def _batch(self, txn: Txn, ref: int) -> _BatchInfo:
        info = self._batches.get(ref)
        if info is None:
            batch = self._tenant.ledger.batch_by_ref(txn, ref)
            rule = RegionRule(batch.authorised_regions, "batch") if batch.authorised_regions \
                else None
            info = self._batches[ref] = _BatchInfo(batch, dt.date.fromisoformat(batch.expires_on),
                                                   rule)
        return info


class _Call:
    """One verification call while its rows are answered: the answers, the read transaction,
    and what is worked out once per call (each batch's and product's entry, each scanned lot
    and expiry's comparison with its batch), plus what the rows leave for after the loop."""

    # What the compiled loop (tracecore/_speedups/_answers.pyx) reads of the rules.
    PARSE_ERROR = ParseError
    GENUINE = Verdict.GENUINE
    RECALLABLE = bytes(n in _RECALLABLE for n in range(256))
    ENDED = bytes(n in _ENDED for n in range(256))
    STATUS_ALERTS = tuple(_STATUS_ALERT_BY_NUMBER)
    DATA_MISMATCH = _DATA_MISMATCH
    DIVERSION = _DIVERSION

    def __init__(self, verifier: Verifier, out: Answers, txn: Txn, context: ScanContext,
                 now_ms: int, today: dt.date, revoked: frozenset[int]) -> None:
        ledger = verifier._tenant.ledger
        checks = verifier._checks
        self.verifier, self.out, self.txn = verifier, out, txn
        self.get, self.codes_db = txn.get, ledger.db["codes"]
        self.parents_db = ledger.db["parents"]
        self.holds = Holds(ledger, txn)
        self.context, self.now_ms, self.today = context, now_ms, today
        self.region = context.region
        self.revoked = revoked
        self.diverted = checks.diversion
        self.supply_chain = checks.clones and bool(
            context.party_id or context.purpose in SUPPLY_CHAIN_PURPOSES)
        self.scanner = verifier._party_ref(txn, context.party_id) if self.supply_chain else 0
        # batch ref -> (index in out.batches, alerts of the whole batch, info, hold status)
        self.batches: dict[int, tuple[int, int, _BatchInfo, int]] = {}
        # Kept across calls: a comparison holds as long as the batch's info it was made from,
        # which the verifier keeps for its life (``Verifier._batch``).
        self.mismatches = verifier._mismatches
        if len(self.mismatches) > _MISMATCHES_KEPT:
            self.mismatches.clear()
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
        out, txn, verifier = self.out, self.txn, self.verifier
        ledger = verifier._tenant.ledger
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
         record_region) = _VERDICT_FIELDS.unpack_from(data)
        recorded = status
        b_index = -1
        mask = 0
        info = None
        context, now_ms = self.context, self.now_ms
        if batch_ref:
            b_index, mask, info, hold = self._batch_entry(batch_ref, product_ref)
            if hold and status in _RECALLABLE:
                status = hold
            if self._mismatch(batch_ref, scan, info):
                mask |= _DATA_MISMATCH
            if mask & _DIVERSION:
                self.raised.append(verifier._diversion(key, code.text(), info, context, now_ms,
                                                       status))
            elif self.diverted and info.rule is not None:
                if self.get(stored, db=self.parents_db) is not None:
                    flags, holder_ref, record_region = verifier._custody(
                        txn, stored, flags, holder_ref, record_region)
                if (record_region and not info.rule.allows(record_region)
                        and verifier._received_there(txn, flags, holder_ref)):
                    mask |= _DIVERSION  # received or dispensed outside its regions
        if self.supply_chain and recorded in _ENDED and (
                not self.scanner or verifier._custody(txn, stored, flags, holder_ref,
                                                      record_region)[1] != self.scanner):
            mask |= _CLONE
            self.raised.append(clone(
                key, code.text(), CloneReason.SEEN_AFTER_END, at_ms=now_ms,
                product=info.batch.product if info else "",
                lot=info.batch.lot if info else "", region=self.region,
                party_id=context.party_id, status=Status(recorded), scan_count=0))
        mask |= _STATUS_ALERT_BY_NUMBER[status]
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
        if data is None or len(data) < _VERDICT_FIELDS.size:
            return
        _, _, _, product_ref, batch_ref, _, _ = _VERDICT_FIELDS.unpack_from(data)
        if batch_ref:
            info = self._batch_entry(batch_ref, product_ref)[2]
            self._mismatch(batch_ref, scan, info)
        if product_ref:
            self._product_index(product_ref, scan.code)

    def _batch_entry(self, batch_ref: int, product_ref: int
                     ) -> tuple[int, int, _BatchInfo, int]:
        entry = self.batches.get(batch_ref)
        if entry is None:
            entry = self.batches[batch_ref] = self.verifier._batch_entry(
                self.txn, batch_ref, product_ref, self.holds, self.out, self.today, self.region)
        return entry

    def _mismatch(self, batch_ref: int, scan: Scan, info: _BatchInfo) -> bool:
        return _kept_mismatch(self.mismatches, batch_ref, scan, info)

    def _product_index(self, product_ref: int, code: Code) -> int:
        """The product's index in the answers' product table, added at its first row."""
        out = self.out
        p_index = self.product_index.get(product_ref) if product_ref else None
        if p_index is None:
            p_index = len(out.products)
            if product_ref:
                self.product_index[product_ref] = p_index
            out.products.append(self.verifier._product(self.txn, product_ref, code))
        return p_index


def answer_rows_reference(call: _Call, scans: Sequence[Scan | ParseError],
                          key_ids: Sequence[int | None], keys: Sequence[bytes],
                          stored: Sequence[bytes]) -> None:
    """Each input's answer row, in order (``_Call.row``, ``_Call.malformed``); ``key_ids``,
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
_answer_rows = answer_rows_reference if _compiled is None else _compiled.answer_rows


def _standing(out: Answers, keys: list[bytes], rows: list[int], tally: Tally
              ) -> tuple[list[bytes], list[int]]:
    """The keys (and rows) a public client scanned for the first time today, which were
    counted; the others get the statistics as they stand (a code it already scanned that day
    is neither counted again nor checked for clones)."""
    assert tally.counted is not None
    counted_keys: list[bytes] = []
    counted_rows: list[int] = []
    standing = iter(tally.standing)
    for key, row, first in zip(keys, rows, tally.counted, strict=True):
        if first:
            counted_keys.append(key)
            counted_rows.append(row)
            continue
        stats = next(standing)
        if stats is not None:
            out.scan_counts[row] = stats.count
            out.first_verified_ms[row] = stats.first_ms
    return counted_keys, counted_rows


def _counted(out: Answers, rows: list[int], located: Located) -> None:
    """Each counted row's scan count, first scan and first scan's region into the answers; a
    batch whose every row was counted takes the columns whole."""
    counts, firsts, _, _, first_regions = located
    if len(rows) == len(out.scan_counts):  # rows ascend: every row, in order
        out.scan_counts, out.first_verified_ms = counts, firsts
    else:
        scan_counts, first_verified = out.scan_counts, out.first_verified_ms
        for row, count, first in zip(rows, counts, firsts, strict=True):
            scan_counts[row] = count
            first_verified[row] = first
    for i in compress(range(len(rows)), first_regions):
        out.first_regions[rows[i]] = first_regions[i]


def _kept_mismatch(kept: dict[tuple[int, str | None, str | None], bool], batch_ref: int,
                   scan: Scan, info: _BatchInfo) -> bool:
    """Whether the scanned lot or expiry differs from the batch's, each (batch, lot, expiry)
    compared once and kept in ``kept``: a pallet's packs carry a few such pairs."""
    seen = (batch_ref, scan.lot, scan.expiry)
    mismatch = kept.get(seen)
    if mismatch is None:
        mismatch = kept[seen] = _mismatch(scan.lot, scan.expiry, info)
    return mismatch


def _mismatch(lot: str | None, expiry: str | None, info: _BatchInfo) -> bool:
    """The scanned lot or expiry differs from the batch on record. A day of 00 means the month."""
    if lot is not None and lot != info.batch.lot:
        return True
    if expiry is None:
        return False
    scanned = _expiry_date(expiry)
    if expiry.endswith("00"):
        return (scanned.year, scanned.month) != (info.expires_on.year, info.expires_on.month)
    return scanned != info.expires_on


@functools.lru_cache(maxsize=8)
def _utc_day(day: int) -> dt.date:
    """The UTC date of a day since the epoch: worked out once a day, not on every call."""
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).date()


@functools.lru_cache(maxsize=4096)
def _expiry_date(yymmdd: str) -> dt.date:
    """A scanned expiry as a date; a pallet's packs share a few, so each is worked out once."""
    return gs1.expiry_date(yymmdd)
