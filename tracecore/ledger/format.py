"""The ledger's format version: which record layouts an LMDB environment holds.

Every tenant ledger and the operator store keep their format version, and the tenant they belong
to, in their ``meta`` database. A ledger without the record is format 1 (everything written
before versions were recorded). A server serves only ledgers of its own format: a newer one is
refused (it was written by a later release and this one cannot know what changed), an older one
is brought forward by the steps in ``tracecore.ledger.migrations`` (``pharmatrace tenant
migrate``, or ``serve --migrate``).
"""

from __future__ import annotations

import struct
from typing import Final

from tracecore.errors import FailedPrecondition
from tracecore.ledger.env import Txn
from tracecore.ledger.store import Ledger
from tracecore.version import LEDGER_FORMAT

#: The format this release reads and writes.
CURRENT: Final = LEDGER_FORMAT
#: The format of a ledger that records none.
UNRECORDED: Final = 1
VERSION_KEY: Final = b"format:version"
OWNER_KEY: Final = b"format:owner"
_U32 = struct.Struct(">I")


class FormatMismatch(FailedPrecondition):
    """The ledger's format is not the one this release serves: newer, or older and not yet
    migrated, or the ledger is another tenant's."""


def version_in(ledger: Ledger, txn: Txn) -> int:
    """The format version recorded in the ledger, ``UNRECORDED`` when it records none."""
    data = txn.get(VERSION_KEY, db=ledger.db["meta"])
    return UNRECORDED if data is None else int(_U32.unpack(bytes(data))[0])


def version_of(ledger: Ledger) -> int:
    with ledger.env.read() as txn:
        return version_in(ledger, txn)


def owner_in(ledger: Ledger, txn: Txn) -> str | None:
    """The tenant the ledger records as its owner (format 2 on), None before."""
    data = txn.get(OWNER_KEY, db=ledger.db["meta"])
    return None if data is None else bytes(data).decode()


def record(ledger: Ledger, txn: Txn, version: int) -> None:
    """Writes the format version and the ledger's owner inside the caller's transaction."""
    txn.put(VERSION_KEY, _U32.pack(version), db=ledger.db["meta"])
    txn.put(OWNER_KEY, ledger.tenant.encode(), db=ledger.db["meta"])


def stamp_new(ledger: Ledger) -> None:
    """Marks a ledger just created by this release as being of the current format."""
    ledger.env.write(lambda txn: record(ledger, txn, CURRENT))


def check(ledger: Ledger, who: str) -> None:
    """Raises FormatMismatch unless the ledger is of the current format and belongs to
    ``ledger.tenant``; ``who`` names it in the message (``tenant acme``, ``the operator store``)."""
    with ledger.env.read() as txn:
        version = version_in(ledger, txn)
        owner = owner_in(ledger, txn)
    if version > CURRENT:
        raise FormatMismatch(
            f"{who}: the ledger is format {version}, written by a later release; this release "
            f"knows formats up to {CURRENT}: run the release that wrote it (or a later one)")
    if version < CURRENT:
        raise FormatMismatch(
            f"{who}: the ledger is format {version} and this release serves format {CURRENT}: "
            "migrate it with `pharmatrace tenant migrate` (or start with `serve --migrate`)")
    if owner is not None and owner != ledger.tenant:
        raise FormatMismatch(
            f"{who}: the ledger in its directory belongs to tenant {owner}: it was copied into "
            "the wrong place")
