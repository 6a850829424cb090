"""Append-only, hash-chained records: each holds the SHA-256 of the one before, so any record
changed, removed, inserted or reordered is found by walking the chain.

A ledger has two chains, the audit trail and the event journal; ``check_chains`` walks them
for every caller that checks a ledger (`pharmatrace audit verify`, `doctor`, backup and restore).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, Self, TypeVar

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.errors import LedgerCorrupt
from tracecore.ledger.code_keys import OTHER_KEY
from tracecore.ledger.env import Database, Txn
from tracecore.ledger.records import seq_key, u64

GENESIS = bytes(32)


class Chained(Protocol):
    """A protobuf record with the three chain fields."""

    seq: int
    prev_hash: bytes
    hash: bytes

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...
    def CopyFrom(self, other: Self, /) -> None: ...
    def ClearField(self, field_name: Literal["hash"], /) -> None: ...


R = TypeVar("R", bound=Chained)


class Sealer(Protocol):
    """Encrypts a chained record's bytes for storage and back (``CodeKeys``)."""

    def seal(self, record: bytes) -> bytes: ...
    def seal_many(self, records: Sequence[bytes]) -> list[bytes]: ...
    def open(self, sealed: bytes) -> bytes: ...


class Chain(Generic[R]):
    """A chain of ``message`` records in ``db`` keyed by sequence number; its head (last
    sequence and hash) is kept in ``meta`` under ``head_key``.

    With a ``sealer``, each record is stored encrypted; the hashes are over the records as
    they are, not as stored, so a chain's heads do not depend on how its records are kept."""

    def __init__(self, db: Database, meta: Database, head_key: bytes, message: type[R],
                 sealer: Sealer | None = None) -> None:
        self._db = db
        self._meta = meta
        self._head_key = head_key
        self._message = message
        self._sealer = sealer
        self._hash_tag = _hash_tag(message)

    def head(self, txn: Txn) -> tuple[int, bytes]:
        """(last sequence number, its hash); (0, GENESIS) when empty."""
        data = txn.get(self._head_key, db=self._meta)
        if data is None:
            return 0, GENESIS
        data = bytes(data)
        return u64(data[:8]), data[8:]

    def append(self, txn: Txn, record: R) -> int:
        """Stores ``record`` as the next link; returns its sequence number."""
        return self.append_many(txn, [record])

    def append_many(self, txn: Txn, records: Sequence[R]) -> int:
        """Stores ``records`` in order as the next links (the head read and written once, the
        records sealed together); returns the last one's sequence number."""
        first, prev = self.head(txn)
        if not records:
            return first
        datas = []
        tag = self._hash_tag
        for seq, record in enumerate(records, first + 1):
            record.seq = seq
            record.prev_hash = prev
            record.hash = b""
            # Serialised with ``hash`` empty is what ``hash_of`` hashes: no copy of the record.
            unhashed = record.SerializeToString(deterministic=True)
            prev = record.hash = hashlib.sha256(prev + unhashed).digest()
            datas.append(unhashed + tag + prev if tag
                         else record.SerializeToString(deterministic=True))
        if self._sealer is not None:
            datas = (self._sealer.seal_many(datas) if len(datas) > 1
                     else [self._sealer.seal(datas[0])])
        db = self._db
        for seq, data in enumerate(datas, first + 1):
            txn.put(seq_key(seq), data, db=db, append=True)
        last = first + len(datas)
        txn.put(self._head_key, seq_key(last) + prev, db=self._meta)
        return last

    def hash_of(self, record: R) -> bytes:
        """SHA-256 over the previous hash and the record serialised with ``hash`` empty."""
        unhashed = self._message()
        unhashed.CopyFrom(record)
        unhashed.ClearField("hash")
        return hashlib.sha256(
            record.prev_hash + unhashed.SerializeToString(deterministic=True)).digest()

    def get(self, txn: Txn, seq: int) -> R:
        data = txn.get(seq_key(seq), db=self._db)
        if data is None:
            raise LedgerCorrupt(f"record {seq} is missing from the chain")
        return self._parse(data)

    def scan(self, txn: Txn, start: int = 1) -> Iterator[R]:
        cursor = txn.cursor(db=self._db)
        if not cursor.set_range(seq_key(start)):
            return
        for _, data in cursor:
            yield self._parse(data)

    def verify(self, txn: Txn) -> tuple[int, int | None]:
        """(records checked, first bad sequence number or None): each record's hash, its link
        to the one before, gapless numbering, and the head."""
        prev = GENESIS
        expected = 1
        cursor = txn.cursor(db=self._db)
        for key, data in cursor:
            try:
                record = self._parse(data)
            except LedgerCorrupt:
                return expected - 1, expected
            if (u64(key) != expected or record.seq != expected or record.prev_hash != prev
                    or record.hash != self.hash_of(record)):
                return expected - 1, expected
            prev = record.hash
            expected += 1
        last = expected - 1
        head_seq, head_hash = self.head(txn)
        if head_seq < last:  # records beyond the head were added
            return head_seq, head_seq + 1
        if head_seq > last:  # records at the end were removed
            return last, last + 1
        if head_hash != prev:  # the last record was replaced, its hash recomputed
            return last - 1, last
        return last, None

    def opens(self, txn: Txn, seq: int) -> bool:
        """Whether record ``seq`` as stored decrypts (a record stored in clear always does):
        tells a record altered or a wrong key from a record that decrypts but does not
        verify."""
        data = txn.get(seq_key(seq), db=self._db)
        if self._sealer is None or data is None:
            return True
        try:
            self._sealer.open(bytes(data))
        except LedgerCorrupt:
            return False
        return True

    def last(self, txn: Txn) -> int:
        """The sequence number of the last record stored (0 when none is)."""
        cursor = txn.cursor(db=self._db)
        return u64(bytes(cursor.key())) if cursor.last() else 0

    def _parse(self, data: bytes | memoryview) -> R:
        if self._sealer is not None:
            data = self._sealer.open(bytes(data))
        message = self._message()
        try:
            message.ParseFromString(bytes(data))  # type: ignore[attr-defined]
        except Exception as exc:  # protobuf's DecodeError, and anything a mangled record raises
            raise LedgerCorrupt("a chained record cannot be decoded") from exc
        return message


@functools.cache
def _hash_tag(message: type[Chained]) -> bytes:
    """What a record of ``message`` serialised with ``hash`` empty is followed by to be the
    record serialised whole, but for the hash itself: deterministically serialised, fields come
    in number order, so when ``hash`` has the highest number it is its field tag and length
    (b"" when another field comes after it)."""
    descriptor = message.DESCRIPTOR  # type: ignore[attr-defined]
    field = descriptor.fields_by_name["hash"]
    if field.number != max(f.number for f in descriptor.fields) or field.number >= 16:
        return b""
    return bytes([field.number << 3 | 2, 32])


def audit_trail(dbs: Mapping[str, Database], sealer: Sealer | None
                ) -> Chain[lpb.AuditRecord]:
    """A ledger's audit trail: who did what, when, where. A tenant's records name codes (what
    a request asked for), so they are stored sealed (``sealer``: the ledger's ``CodeKeys``) from
    format 3 on; the operator store's are not (None)."""
    return Chain(dbs["audit"], dbs["meta"], b"audit:head", lpb.AuditRecord, sealer)


def event_journal(dbs: Mapping[str, Database], sealer: Sealer | None
                  ) -> Chain[lpb.EventRecord]:
    """A ledger's event journal: every lifecycle event, in order; its records name codes, so
    they are stored sealed (``sealer``: the ledger's ``CodeKeys``) from format 3 on."""
    return Chain(dbs["events"], dbs["meta"], b"journal:head", lpb.EventRecord, sealer)


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What walking one chain found."""

    name: str
    checked: int
    """Records that verify, from the first."""
    broken_at: int | None
    """The first record that does not; None when the whole chain verifies."""
    wrong_key: bool = False
    """Neither the first record nor the last decrypts: the key given is not the one the
    records were sealed under, and nothing about the chain is known."""

    @property
    def intact(self) -> bool:
        return self.broken_at is None

    @property
    def summary(self) -> str:
        """One line for a person: how many records verify, where the chain breaks, or that
        the key does not open the records."""
        if self.broken_at is None:
            return f"{self.checked:,} records, chain intact"
        if self.wrong_key:
            return ("the key does not open its records (neither the first nor the last "
                    f"decrypts), so the chain was not checked: {OTHER_KEY}")
        return (f"chain BROKEN at record {self.broken_at} ({self.checked:,} records before it "
                "verify)")


def _check(name: str, chain: Chain[R], txn: Txn) -> ChainCheck:
    checked, broken_at = chain.verify(txn)
    wrong_key = broken_at == 1 and not chain.opens(txn, 1) and not chain.opens(
        txn, chain.last(txn))
    return ChainCheck(name, checked, broken_at, wrong_key)


def check_chains(txn: Txn, dbs: Mapping[str, Database], sealer: Sealer | None, *,
                 events: bool = True) -> list[ChainCheck]:
    """Walks a ledger's audit trail and, unless ``events`` is false (the operator's ledger has
    no events), its event journal; ``sealer`` opens a tenant's records (None for the operator
    store's)."""
    checks = [_check("audit trail", audit_trail(dbs, sealer), txn)]
    if events:
        checks.append(_check("event journal", event_journal(dbs, sealer), txn))
    return checks


# -- sealed heads ---------------------------------------------------------------------------------
#
# A hash chain proves order, not authorship: whoever can write the file can rewrite a record and
# rehash everything after it. A seal is an HMAC, under a key derived from the key-encryption key
# (which never sits beside the data), over both chains' heads; the running server renews it as
# the chains grow. A rewrite of any record up to the sealed heads changes the hash at the sealed
# position, which the seal then contradicts; the seal itself cannot be recomputed without the key.

SEAL_KEY = b"chains:seal"
SEAL_PURPOSE = "chain seal"
_SEAL_BYTES = 8 + 32 + 8 + 32 + 32


@dataclass(frozen=True, slots=True)
class Seal:
    """The heads a seal vouches for, and its MAC (hex in ``exported``)."""

    audit_seq: int
    audit_hash: bytes
    event_seq: int
    event_hash: bytes
    mac: bytes

    def exported(self, tenant: str) -> dict[str, str | int]:
        """The heads for an outside party to hold, as JSON-ready values."""
        return {"tenant": tenant, "audit_seq": self.audit_seq,
                "audit_hash": self.audit_hash.hex(), "event_seq": self.event_seq,
                "event_hash": self.event_hash.hex(), "mac": self.mac.hex()}


def _seal_mac(key: bytes, tenant: str, audit: tuple[int, bytes], events: tuple[int, bytes]
              ) -> bytes:
    message = (tenant.encode() + b"\0" + u64_bytes(audit[0]) + audit[1] + u64_bytes(events[0])
               + events[1])
    return hmac.digest(key, message, "sha256")


def u64_bytes(n: int) -> bytes:
    """Big-endian 8 bytes, as sequence numbers are sealed."""
    return n.to_bytes(8, "big")


def read_seal(txn: Txn, dbs: Mapping[str, Database]) -> Seal | None:
    """The stored seal; None for a ledger never sealed (older versions)."""
    data = txn.get(SEAL_KEY, db=dbs["meta"])
    if data is None or len(data) != _SEAL_BYTES:
        return None
    data = bytes(data)
    return Seal(int.from_bytes(data[:8], "big"), data[8:40], int.from_bytes(data[40:48], "big"),
                data[48:80], data[80:])


def renew_seal(txn: Txn, dbs: Mapping[str, Database], key: bytes, tenant: str) -> bool:
    """Seals the current heads (in the caller's write transaction) unless already sealed;
    whether it wrote."""
    # Heads only: nothing is opened.
    audit, events = audit_trail(dbs, None).head(txn), event_journal(dbs, None).head(txn)
    current = read_seal(txn, dbs)
    if current is not None and (current.audit_seq, current.event_seq) == (audit[0], events[0]):
        return False
    mac = _seal_mac(key, tenant, audit, events)
    txn.put(SEAL_KEY, u64_bytes(audit[0]) + audit[1] + u64_bytes(events[0]) + events[1] + mac,
            db=dbs["meta"])
    return True


def check_seal(txn: Txn, dbs: Mapping[str, Database], key: bytes, tenant: str,
               sealer: Sealer | None) -> str | None:
    """What is wrong with the seal, or None when it holds: its MAC matches the key, and each
    chain still has, at the sealed position, the sealed hash. Raises nothing for a ledger with
    no seal: the caller reports that (see ``read_seal``)."""
    seal = read_seal(txn, dbs)
    if seal is None:
        return None
    sealed_audit, sealed_events = (seal.audit_seq, seal.audit_hash), (seal.event_seq,
                                                                        seal.event_hash)
    if not hmac.compare_digest(seal.mac, _seal_mac(key, tenant, sealed_audit, sealed_events)):
        return "the seal over the chain heads does not match: it was altered or forged"
    for name, chain, (seq, expected) in (("audit trail", audit_trail(dbs, sealer), sealed_audit),
                                         ("event journal", event_journal(dbs, sealer),
                                          sealed_events)):
        if seq == 0:
            continue
        try:
            found = chain.get(txn, seq).hash
        except LedgerCorrupt:
            found = b""
        if found != expected:
            return (f"the {name} differs from its sealed head (record {seq}): records up to it "
                    "were changed, removed or rehashed")
    return None
