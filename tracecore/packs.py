"""The packs one lifecycle request sees, as ``tracecore.lifecycle_rules`` reads and changes them:
the ledger's write transaction (``tracecore.ledger.pack_session``) or an in-memory fake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Protocol

from pharmatrace.v1 import common_pb2 as cpb

from tracecore.ledger.contents import Row
from tracecore.ledger.counters import Flow
from tracecore.ledger.records import CodeRecord
from tracecore.oversight import Raised, RegionRule
from tracecore.status import Status


class Packs(Protocol):
    """The packs one request sees (its own changes included) and the changes it makes."""

    now_ms: int

    def record(self, key: bytes) -> CodeRecord | None: ...
    def records_many(self, keys: list[bytes]) -> list[tuple[bytes, CodeRecord | None]]:
        """(key, ``record``) of each key, in order."""
    def parent(self, key: bytes) -> bytes | None: ...
    def custody(self, key: bytes, record: CodeRecord) -> CodeRecord:
        """``record`` with the holder, region and in-transit flag of the top container ``key``
        is in (``tracecore.ledger.contents``); itself when it is in none."""
    def contents(self, key: bytes) -> dict[Row, int]:
        """The packs inside a container at any depth, by tally row."""
    def tree(self, key: bytes) -> list[tuple[bytes, CodeRecord]]:
        """``key`` and everything packed inside it; Refused when one is not ours."""
    def children(self, key: bytes) -> Iterable[bytes]: ...
    def party(self, party_id: str, field: str) -> tuple[int, int]:
        """(party ref, region) of a registered party; NotFound naming ``field`` otherwise."""
    def party_id(self, ref: int) -> str: ...
    def batch_ref(self, product_ref: int, lot: str) -> int:
        """The ref of a product's batch; Refused when it is not registered."""
    def hold_status(self, batch_ref: int, product_ref: int) -> Status | None:
        """RECALLED or WITHDRAWN when a recall or withdrawal covers the batch, else None."""
    def batch_rule(self, batch_ref: int) -> tuple[cpb.Batch, RegionRule]: ...
    def party_rule(self, party_ref: int) -> RegionRule | None: ...
    def shipped_by(self, key: bytes) -> int: ...
    def expires_on(self, batch_ref: int) -> dt.date | None: ...
    def put(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None: ...
    def put_many(self, keys: Sequence[bytes], before: Sequence[CodeRecord],
                 after: Sequence[CodeRecord]) -> None:
        """``put`` of each key, with its record before and after, in one call."""
    def link(self, parent: bytes, child: bytes) -> None: ...
    def unlink(self, parent: bytes, child: bytes) -> None:
        """Takes ``child`` out of ``parent``, keeping the custody it inherited."""
    def carry(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        """The top container ``key``'s custody changed from ``before``'s to ``after``'s: so
        did that of everything inside it."""
    def restated(self, key: bytes, before: CodeRecord, after: CodeRecord) -> None:
        """A pack's record changed from ``before`` to ``after`` (its status) where it is."""
    def commissioned(self, batch_ref: int, key: bytes) -> None: ...
    def returned(self, pool_ref: int) -> None: ...
    def pool_requester(self, pool_ref: int) -> tuple[str, str]:
        """(credential, party) that requested a pool; ("", "") when not recorded."""
    def shipped(self, key: bytes, shipper: int | None) -> None:
        """Remembers (or, with None, forgets) the restricted party that shipped a pack."""
    def flow(self, record: CodeRecord, flow: Flow, at_ms: int) -> None: ...
    def flow_rows(self, rows: dict[Row, int], region: int, flow: Flow, at_ms: int) -> None:
        """``flow`` of the units of tally rows, in ``region``."""
    def flow_many(self, records: Sequence[CodeRecord], flow: Flow, at_ms: int) -> None:
        """``flow`` of each record, all at ``at_ms``."""
    def raise_alert(self, raised: Raised) -> int:
        """Keeps an alert to store with the request; returns how many it raised before."""
    def dispense_elsewhere(self) -> bool:
        """Whether the tenant's policy lets a party dispense a pack it does not hold."""
