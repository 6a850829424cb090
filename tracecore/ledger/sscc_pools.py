"""SSCC pools in a tenant's ledger: company prefixes, one forward-only counter per prefix and
extension digit, and pools by request id.

The records are few and small (one per prefix, counter and pool, none per SSCC: a pool is a
range of serial references), so they live in the ledger's ``meta`` database under ``sscc:``
keys rather than in a database of their own.

SSCCs carry no tag: which were allocated is what a forger of logistic units' labels would need.
Pool records and counters (a counter gives the whole range below it) are therefore stored sealed
under the tenant's ``CodeKeys`` (AES-GCM); company prefixes, which every GTIN of the company
shows, stay in clear. A ledger whose SSCC records an earlier build wrote in clear is sealed when
the writer first opens it (``seal_old``).
"""

from __future__ import annotations

import struct

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import sscc
from tracecore.errors import FailedPrecondition, LedgerCorrupt, NotFound, ResourceExhausted
from tracecore.ledger.code_keys import seal_once
from tracecore.ledger.env import Txn
from tracecore.ledger.records import CodeRecord
from tracecore.ledger.store import Ledger
from tracecore.status import Status

_U64 = struct.Struct(">Q")
_PREFIX = b"sscc:prefix:"
_NEXT = b"sscc:next:"
_POOL = b"sscc:pool:"
#: In ``meta`` once the pools and counters are sealed.
SEALED_MARK = b"sscc:sealed"


class SsccPools:
    """The SSCC side of one tenant's ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._env = ledger.env
        self._meta = ledger.db["meta"]
        self._seal = ledger.codes.seal
        self._open = ledger.codes.open

    def _pool_in(self, txn: Txn, request_id: str) -> lpb.SsccPoolRecord | None:
        data = txn.get(_POOL + request_id.encode(), db=self._meta)
        return None if data is None else lpb.SsccPoolRecord.FromString(
            self._open(bytes(data)))

    def _counter_in(self, txn: Txn, prefix: str, extension: int | str) -> int | None:
        """The prefix's counter for the extension digit: the next serial reference to allocate,
        None before the first pool."""
        data = txn.get(_NEXT + f"{prefix}:{extension}".encode(), db=self._meta)
        return None if data is None else int(_U64.unpack(self._open(bytes(data)))[0])

    def register_prefix(self, prefix: str, now_ms: int) -> lpb.CompanyPrefixRecord:
        """Registers a GS1 company prefix of the tenant; registering it again changes nothing."""
        sscc.company_prefix(prefix)

        def fn(txn: Txn) -> lpb.CompanyPrefixRecord:
            existing = txn.get(_PREFIX + prefix.encode(), db=self._meta)
            if existing is not None:
                return lpb.CompanyPrefixRecord.FromString(bytes(existing))
            record = lpb.CompanyPrefixRecord(company_prefix=prefix, registered_at_ms=now_ms)
            txn.put(_PREFIX + prefix.encode(), record.SerializeToString(), db=self._meta)
            return record

        return self._env.write(fn)

    def prefixes(self) -> list[lpb.CompanyPrefixRecord]:
        """The registered company prefixes, in digit order."""
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._meta)
            out: list[lpb.CompanyPrefixRecord] = []
            if not cursor.set_range(_PREFIX):
                return out
            for key, data in cursor:
                if not bytes(key).startswith(_PREFIX):
                    break
                out.append(lpb.CompanyPrefixRecord.FromString(bytes(data)))
            return out

    def allocate(self, request_id: str, prefix: str, extension: int, count: int,
                 now_ms: int) -> lpb.SsccPoolRecord:
        """The pool for a request id: on first sight ``count`` serial references are taken from
        the prefix's counter, durably; a retry gets the same pool back, and a request id used
        for a different request is refused."""

        def fn(txn: Txn) -> lpb.SsccPoolRecord:
            record = self._pool_in(txn, request_id)
            if record is not None:
                if (record.company_prefix, record.extension_digit, record.count) != (
                        prefix, extension, count):
                    raise FailedPrecondition(
                        f"request_id {request_id} was used for a different request ({record.count}"
                        f" SSCCs under {record.extension_digit}/{record.company_prefix})",
                        field="request_id")
                return record
            if txn.get(_PREFIX + prefix.encode(), db=self._meta) is None:
                raise NotFound(f"company prefix {prefix} is not registered for this tenant",
                               field="company_prefix")
            first = self._counter_in(txn, prefix, extension) or 0
            left = sscc.capacity(prefix) - first
            if count > left:
                raise ResourceExhausted(
                    f"company prefix {prefix} has {left:,} SSCCs left under extension digit "
                    f"{extension}: use another extension digit or prefix")
            txn.put(_NEXT + f"{prefix}:{extension}".encode(),
                    self._seal(_U64.pack(first + count)), db=self._meta)
            record = lpb.SsccPoolRecord(request_id=request_id, company_prefix=prefix,
                                        extension_digit=extension, first=first, count=count,
                                        created_at_ms=now_ms)
            txn.put(_POOL + request_id.encode(), self._seal(record.SerializeToString()),
                    db=self._meta)
            return record

        return self._env.write(fn)

    def pool(self, request_id: str) -> lpb.SsccPoolRecord:
        with self._env.read() as txn:
            record = self._pool_in(txn, request_id)
        if record is None:
            raise NotFound(f"no SSCC pool was requested under {request_id}", field="request_id")
        return record

    def allocated_under(self, code: str) -> str | None:
        """The registered company prefix an SSCC was allocated under, None if this tenant never
        allocated it: its prefix is not registered, or its serial reference lies at or past that
        prefix's counter for the SSCC's extension digit (the counter only moves forward, so every
        reference below it is in some pool)."""
        with self._env.read() as txn:
            return self.allocated_in(txn, code)

    def registered_in(self, txn: Txn, code: str) -> bool:
        """Whether an SSCC lies under one of the tenant's registered company prefixes: one of
        its own, allocated or not, and never another company's."""
        sscc.check(code)
        return any(txn.get(_PREFIX + code[1:1 + length].encode(), db=self._meta) is not None
                   for length in range(sscc.MIN_PREFIX, sscc.MAX_PREFIX + 1))

    def allocated_in(self, txn: Txn, code: str) -> str | None:
        """``allocated_under`` within a transaction the caller holds (a write, say)."""
        sscc.check(code)
        for length in range(sscc.MIN_PREFIX, sscc.MAX_PREFIX + 1):
            prefix = code[1:1 + length]
            if txn.get(_PREFIX + prefix.encode(), db=self._meta) is None:
                continue
            counter = self._counter_in(txn, prefix, code[0])
            if counter is not None and sscc.serial_reference(code, prefix) < counter:
                return prefix
        return None

    def seal_old(self) -> None:
        """Seals the pools and counters of a ledger that stored them in clear (written before
        they were sealed), once: the writer calls it when it opens the ledger. A value that
        already opens is left as it is, so that one sealed since (by a primary whose mark a
        replica never received, say) is never sealed twice."""
        meta, seal = self._meta, self._seal

        def in_clear(value: bytes) -> bool:
            try:
                self._open(value)
            except LedgerCorrupt:
                return True
            return False

        def rewrite(txn: Txn) -> None:
            for prefix in (_NEXT, _POOL):
                cursor = txn.cursor(db=meta)
                found: list[tuple[bytes, bytes]] = []
                if cursor.set_range(prefix):
                    for key, value in cursor:
                        if not bytes(key).startswith(prefix):
                            break
                        found.append((bytes(key), bytes(value)))
                for key, value in found:
                    if in_clear(value):
                        txn.put(key, seal(value), db=meta)

        seal_once(self._env, rewrite, SEALED_MARK)


def logistic_unit(level: int, holder: int, region: int, now_ms: int) -> CodeRecord:
    """The record an allocated SSCC gets when it is first named as a parent: an ACTIVE logistic
    unit of no product (its contents carry theirs) and no batch (a pallet may mix lots), held
    where the aggregation happens. An SSCC has no signing key: key id 0."""
    return CodeRecord(Status.ACTIVE, level, 0, 0, holder_ref=holder, region=region,
                      issued_at_ms=now_ms, updated_at_ms=now_ms)
