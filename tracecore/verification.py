"""Verification: is this pack genuine, what is its status, and what should the scanner know?

One loop answers one code or a pallet of them: parse, check the tag against the tenant's keys
(no storage touched for forgeries and typos), look the code up in the ledger, count the scan.
Answers are columnar so a batch of 100,000 costs lists, not objects. What depends only on the
batch (expiry, recall, a scan outside its regions) is worked out once per batch per call; per
code there is a lookup and a few comparisons (``tracecore.verification_rows``). A consumer's
scan of one code, the most frequent call, skips that machinery (``Verifier.verify_one``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from itertools import compress, repeat
from operator import gt

from pharmatrace.v1 import common_pb2 as pb

from tracecore.answers import NOT_MINTED as NOT_MINTED
from tracecore.answers import Alert as Alert
from tracecore.answers import Answers as Answers
from tracecore.answers import CodeTexts
from tracecore.answers import ScanContext as ScanContext
from tracecore.answers import Verdict as Verdict
from tracecore.answers import alerts_of as alerts_of
from tracecore.answers import not_minted as not_minted
from tracecore.codes import parse, parse_many, parse_one, parsed_codes
from tracecore.errors import ParseError
from tracecore.ledger import foreign, history
from tracecore.ledger.alerts import AlertBook
from tracecore.ledger.observations import Located, Observations, Tally
from tracecore.ledger.oversight import Holds
from tracecore.ledger.records import FLAG_FOREIGN
from tracecore.ledger.tenants import Tenant
from tracecore.mac import Mac
from tracecore.minting import check_tags
from tracecore.oversight import (
    SUPPLY_CHAIN_PURPOSES,
    Checks,
    CloneReason,
    Raised,
    Travel,
    clone,
)
from tracecore.schemes.base import Scan
from tracecore.schemes.repair import Repaired, hint, readings
from tracecore.status import Status
from tracecore.verification_rows import (
    CLONE,
    DATA_MISMATCH,
    DIVERSION,
    EXPIRED,
    RECALLABLE_NUMBERS,
    STATUS_ALERT_BY_NUMBER,
    VERDICT_FIELDS,
    Call,
    Kept,
    answer_rows,
    answer_rows_reference,
)

_DAY_MS = 86_400_000

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
        self._kept = Kept(tenant, self._checks)

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
            call = Call(self._kept, out, txn, context, now_ms, today, revoked)
            if self._reference or answer_rows is answer_rows_reference:
                answer_rows_reference(call, scans, key_ids, code_keys, stored)
            else:
                if len(parsed) == 1 and key_ids[0] is not None:
                    # One code: its entries made first, so that the compiled loop answers it.
                    call.make_entries(parsed[0], stored[0])
                answer_rows(call, scans, key_ids, code_keys, stored)
        self._count(out, call.genuine_keys, call.genuine_rows, context, now_ms, client,
                    call.raised)
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
        other scan, which ``Call.row`` answers. Nothing is counted or raised here: the usual scan
        raises no alert before its statistics (a diversion seen where the pack was received is
        an answer's alert, as ``Call.row`` gives it, not a new alert)."""
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
        ledger, kept = tenant.ledger, self._kept
        key = code.key()
        stored = ledger.codes.stored(key)
        with ledger.env.read() as txn:
            data = txn.get(stored, db=ledger.db["codes"])
            if data is None or len(data) < VERDICT_FIELDS.size or data[2] & FLAG_FOREIGN:
                return None
            (status, flags, key_id, product_ref, batch_ref, holder_ref,
             region) = VERDICT_FIELDS.unpack_from(data)
            if not batch_ref or key_id in keys.revoked():
                return None
            info = kept.batch(txn, batch_ref)
            mask = 0
            if info.rule is not None and self._checks.diversion:
                # Sold in some regions only: where the pack was received or dispensed.
                if txn.get(stored, db=ledger.db["parents"]) is not None:
                    flags, holder_ref, region = kept.custody(txn, stored, flags, holder_ref,
                                                            region)
                if (region and not info.rule.allows(region)
                        and kept.received_there(txn, flags, holder_ref)):
                    mask = DIVERSION
            hold = Holds(ledger, txn).hold_status(batch_ref, product_ref) \
                if status in RECALLABLE_NUMBERS else None
            product = kept.product(txn, product_ref, code)
            level = data[1]
        if hold is not None:
            status = int(hold)
        mask |= STATUS_ALERT_BY_NUMBER[status]
        if info.expires_on < _utc_day(now_ms // _DAY_MS):
            mask |= EXPIRED
        if kept.mismatch(batch_ref, scan, info):
            mask |= DATA_MISMATCH
        out = Answers(verdicts=[Verdict.GENUINE], statuses=[status], alert_masks=[mask],
                      scan_counts=[0], first_verified_ms=[0], batch_indexes=[0],
                      product_indexes=[0], levels=[level], codes=CodeTexts([code]),
                      reasons=[""], batches=[info.batch], products=[product])
        return out, key

    def _count(self, out: Answers, keys: list[bytes], rows: list[int], context: ScanContext,
               now_ms: int, client: bytes, raised: list[Raised]) -> None:
        """The scans of the genuine rows (``keys``, their ledger keys) counted, their
        statistics and clone checks into the answers, and the alerts raised buffered."""
        if keys:
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
            out.alert_masks[row] |= CLONE
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


@functools.lru_cache(maxsize=8)
def _utc_day(day: int) -> dt.date:
    """The UTC date of a day since the epoch: worked out once a day, not on every call."""
    return dt.datetime.fromtimestamp(day * 86_400, dt.UTC).date()
