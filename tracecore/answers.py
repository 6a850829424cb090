"""What a verification answers: a verdict, a status and alerts per scanned input, in columns
(``Answers``), and the rows every answer shares: a failure, an unused SSCC, a tenant that minted
nothing."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from pharmatrace.v1 import common_pb2 as pb

from tracecore.codes import Code, parse_many
from tracecore.errors import ParseError
from tracecore.oversight import AlertKind
from tracecore.status import Status

#: Why a well-formed code fails: no key of the tenant signed it.
NOT_MINTED = "not minted by this tenant: the code's check characters do not match"


class Verdict(enum.IntEnum):
    """``pharmatrace.v1.Verdict``."""

    GENUINE = 1
    UNKNOWN = 2
    BAD_SIGNATURE = 3
    INVALID_FORMAT = 4
    KNOWN_FOREIGN = 5
    """In the ledger, minted by another party: known to this ledger, not signed by us."""


Alert = AlertKind
"""What an answer flags; in ``Answers.alert_masks``, kind K is bit 1 << K."""


def alerts_of(mask: int) -> list[Alert]:
    return [alert for bit, alert in _ALERT_BITS if mask & bit]


_ALERT_BITS = tuple((alert.bit, alert) for alert in Alert)


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Where and why codes were scanned; all optional."""

    party_id: str = ""
    region: int = 0
    purpose: int = 0


class CodeTexts(Sequence[str]):
    """The canonical text of each row's code (``Code.text``), written out when a row's is asked
    for: a batch's answer names few of its codes (a repaired scan's, a clone alert's), so a row
    keeps its ``Code`` and the texts of a pallet's other packs are never made."""

    __slots__ = ("items",)

    def __init__(self, texts: Sequence[str | Code] = ()) -> None:
        self.items: list[str | Code] = list(texts)
        """Each row's text, or the code it is the text of."""

    def append(self, text: str | Code) -> None:
        self.items.append(text)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, row: int) -> str: ...

    @overload
    def __getitem__(self, row: slice) -> list[str]: ...

    def __getitem__(self, row: int | slice) -> str | list[str]:
        if isinstance(row, slice):
            return [_text(item) for item in self.items[row]]
        return _text(self.items[row])

    def __setitem__(self, row: int, text: str) -> None:
        self.items[row] = text

    def __iter__(self) -> Iterator[str]:
        return map(_text, self.items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CodeTexts | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CodeTexts({list(self)!r})"


def _text(item: str | Code) -> str:
    return item if isinstance(item, str) else item.text()


@dataclass(slots=True)
class Answers:
    """One entry per scanned input, in order, plus the product and batch tables they point to."""

    verdicts: list[int] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    alert_masks: list[int] = field(default_factory=list)
    scan_counts: list[int] = field(default_factory=list)
    first_verified_ms: list[int] = field(default_factory=list)
    first_regions: dict[int, int] = field(default_factory=dict)
    """Row: the region (GB/T 2260 as an integer) of the code's first scan, where it said."""
    batch_indexes: list[int] = field(default_factory=list)
    product_indexes: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    codes: CodeTexts = field(default_factory=CodeTexts)
    reasons: list[str] = field(default_factory=list)
    minted_by: dict[int, str] = field(default_factory=dict)
    """For KNOWN_FOREIGN rows: who minted the code, as the ledger was told ("" unknown)."""
    batches: list[pb.Batch] = field(default_factory=list)
    products: list[pb.Product] = field(default_factory=list)
    repairs: dict[int, str] = field(default_factory=dict)
    """Row -> what was repaired in a scrambled scan, whose answer is that of the repaired code."""
    hints: dict[int, str] = field(default_factory=dict)
    """Row -> what looks wrong with a scan that failed and could not be repaired."""


def not_minted(texts: Sequence[str | bytes]) -> Answers:
    """The answers of a tenant that minted none of ``texts``: what a public caller naming a
    tenant that does not exist is told, so that tenant names cannot be probed."""
    out = Answers()
    for scan in parse_many(texts):
        if isinstance(scan, ParseError):
            append_row(out, Verdict.INVALID_FORMAT, "", scan.reason)
        else:
            append_row(out, Verdict.BAD_SIGNATURE, scan.code.text(), NOT_MINTED)
    return out


def unused_sscc(out: Answers, code: Code, allocated_under: str | None) -> None:
    """An SSCC that no aggregation has named yet: allocated from one of the tenant's pools, it
    is genuine and, like an issued code, not commissioned; otherwise it is unknown here, as a
    code never issued is."""
    if allocated_under is None:
        append_row(out, Verdict.UNKNOWN, code.text(),
                   "not allocated from this tenant's SSCC pools")
        return
    append_row(out, Verdict.GENUINE, code.text(), "")
    out.statuses[-1] = Status.ISSUED
    out.alert_masks[-1] = Alert.NOT_COMMISSIONED.bit


def append_row(out: Answers, verdict: Verdict, code: str, reason: str) -> None:
    """A row of ``out`` with its verdict, code and reason, and no status, alert, batch or
    product."""
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
