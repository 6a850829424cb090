"""Verification: is this pack genuine, what is its status, and what should the scanner know?

One loop answers one code or a pallet of them: parse, check the tag against the tenant's keys
(no storage touched for forgeries and typos), look the code up in the ledger, count the scan.
Answers are columnar so a batch of 100,000 costs lists, not objects.
"""

from __future__ import annotations

import datetime as dt
import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from pharmatrace.v1 import common_pb2 as pb

from tracecore import gs1
from tracecore.codes import parse_many
from tracecore.errors import ParseError
from tracecore.keys import KeyState
from tracecore.ledger.observations import Observations
from tracecore.ledger.records import CODE_RECORD_SIZE
from tracecore.ledger.tenants import Tenant
from tracecore.minting import check_tags
from tracecore.status import DECOMMISSIONED, Status

# status, key id, product ref, batch ref: the fields of a code record a verdict needs.
_VERDICT_FIELDS = struct.Struct("<BxxxHxxII")
assert _VERDICT_FIELDS.size <= CODE_RECORD_SIZE


class Verdict(enum.IntEnum):
    """``pharmatrace.v1.Verdict``."""

    GENUINE = 1
    UNKNOWN = 2
    BAD_SIGNATURE = 3
    INVALID_FORMAT = 4


class Alert(enum.IntEnum):
    """``pharmatrace.v1.AlertKind``; in masks, kind K is bit 1 << K."""

    NOT_COMMISSIONED = 1
    VOIDED = 2
    EXPIRED = 3
    DATA_MISMATCH = 4
    KEY_REVOKED = 5
    RECALLED = 6
    WITHDRAWN = 7
    ALREADY_DECOMMISSIONED = 8
    DESTROYED_OR_STOLEN = 9
    DIVERSION = 10
    CLONE_SUSPECTED = 11

    @property
    def bit(self) -> int:
        return 1 << self.value


def alerts_of(mask: int) -> list[Alert]:
    return [a for a in Alert if mask & a.bit]


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


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Where and why codes were scanned; all optional."""

    party_id: str = ""
    region: int = 0
    purpose: int = 0


@dataclass(frozen=True, slots=True)
class _BatchInfo:
    batch: pb.Batch
    expires_on: dt.date


@dataclass(slots=True)
class Answers:
    """One entry per scanned input, in order, plus the product and batch tables they point to."""

    verdicts: list[int] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    alert_masks: list[int] = field(default_factory=list)
    scan_counts: list[int] = field(default_factory=list)
    first_verified_ms: list[int] = field(default_factory=list)
    batch_indexes: list[int] = field(default_factory=list)
    product_indexes: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    batches: list[pb.Batch] = field(default_factory=list)
    products: list[pb.Product] = field(default_factory=list)


class Verifier:
    """Answers verification for one tenant; one per worker process."""

    def __init__(self, tenant: Tenant, observations: Observations) -> None:
        self._tenant = tenant
        self._observations = observations
        self._products: dict[int, pb.Product] = {}
        self._batches: dict[int, _BatchInfo] = {}

    def verify(self, texts: Sequence[str | bytes], context: ScanContext, now_ms: int) -> Answers:
        """Answers for every input; a malformed one gets INVALID_FORMAT, never an exception."""
        tenant = self._tenant
        keys = tenant.keys
        macs = keys.macs()
        revoked = {k.key_id for k in keys if k.state is KeyState.REVOKED}
        ledger = tenant.ledger
        codes_db = ledger.db["codes"]
        today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
        out = Answers()
        scans = parse_many(texts)
        parsed = [s for s in scans if not isinstance(s, ParseError)]
        key_ids = iter(check_tags([s.code for s in parsed], macs))
        genuine_keys: list[bytes] = []
        genuine_rows: list[int] = []
        product_index: dict[int, int] = {}
        batch_index: dict[int, int] = {}
        with ledger.env.read() as txn:
            get = txn.get
            for row, scan in enumerate(scans):
                if isinstance(scan, ParseError):
                    _append(out, Verdict.INVALID_FORMAT, "", scan.reason)
                    continue
                code = scan.code
                key_id = next(key_ids)
                if key_id is None:
                    _append(out, Verdict.BAD_SIGNATURE, code.text(),
                            "not minted by this tenant: the code's check characters do not match")
                    continue
                key = code.key()
                data = get(key, db=codes_db)
                if data is None:
                    _append(out, Verdict.UNKNOWN, code.text(), "signed, but not in the ledger")
                    continue
                status, record_key_id, product_ref, batch_ref = _VERDICT_FIELDS.unpack_from(data)
                mask = _STATUS_ALERT_BY_NUMBER[status]
                verdict = Verdict.GENUINE
                reason = ""
                if record_key_id in revoked:
                    verdict = Verdict.BAD_SIGNATURE
                    reason = "minted under a revoked signing key"
                    mask |= Alert.KEY_REVOKED.bit
                p_index = product_index.get(product_ref)
                if p_index is None:
                    p_index = product_index[product_ref] = len(out.products)
                    out.products.append(self._product(txn, product_ref))
                b_index = -1
                if batch_ref:
                    info = self._batch(txn, batch_ref)
                    b_index = batch_index.get(batch_ref, -1)
                    if b_index < 0:
                        b_index = batch_index[batch_ref] = len(out.batches)
                        out.batches.append(info.batch)
                    if info.expires_on < today:
                        mask |= Alert.EXPIRED.bit
                    if _mismatch(scan.lot, scan.expiry, info):
                        mask |= Alert.DATA_MISMATCH.bit
                out.verdicts.append(verdict)
                out.statuses.append(status)
                out.alert_masks.append(mask)
                out.scan_counts.append(0)
                out.first_verified_ms.append(0)
                out.batch_indexes.append(b_index)
                out.product_indexes.append(p_index)
                out.levels.append(data[1])
                out.codes.append(code.text())
                out.reasons.append(reason)
                genuine_keys.append(key)
                genuine_rows.append(row)
        if genuine_keys:
            stats = self._observations.record(genuine_keys, now_ms, context.region)
            for row, (count, first) in zip(genuine_rows, stats, strict=True):
                out.scan_counts[row] = count
                out.first_verified_ms[row] = first
        return out

    def _product(self, txn: object, ref: int) -> pb.Product:
        product = self._products.get(ref)
        if product is None:
            product = self._products[ref] = self._tenant.ledger.product_by_ref(txn, ref)
        return product

    def _batch(self, txn: object, ref: int) -> _BatchInfo:
        info = self._batches.get(ref)
        if info is None:
            batch = self._tenant.ledger.batch_by_ref(txn, ref)
            info = self._batches[ref] = _BatchInfo(batch, dt.date.fromisoformat(batch.expires_on))
        return info


def _append(out: Answers, verdict: Verdict, code: str, reason: str) -> None:
    out.verdicts.append(verdict)
    out.statuses.append(0)
    out.alert_masks.append(0)
    out.scan_counts.append(0)
    out.first_verified_ms.append(0)
    out.batch_indexes.append(-1)
    out.product_indexes.append(-1)
    out.levels.append(0)
    out.codes.append(code)
    out.reasons.append(reason)


def _mismatch(lot: str | None, expiry: str | None, info: _BatchInfo) -> bool:
    """The scanned lot or expiry differs from the batch on record. A day of 00 means the month."""
    if lot is not None and lot != info.batch.lot:
        return True
    if expiry is None:
        return False
    if expiry.endswith("00"):
        scanned = gs1.expiry_date(expiry)
        return (scanned.year, scanned.month) != (info.expires_on.year, info.expires_on.month)
    return gs1.expiry_date(expiry) != info.expires_on
