"""Format 1 -> 2: the ledger records its format and its owner, finishes its material-lot index,
and says in its audit trail that it was migrated.

- ``format:version`` and ``format:owner`` in ``meta``: a later release knows what it opens, and
  a ledger copied into another tenant's directory is refused instead of served as that tenant's.
- The material-lot index over batches added before the index existed used to be built by every
  writer at every start; it is built here once, so that opening a ledger never writes to it.
- An audit record (method ``pharmatrace.ledger/MigrateFormat``) dates the migration and names
  the release that made it, in the hash-chained trail regulators already read.

One transaction: a kill leaves the ledger at format 1, untouched, and the step runs again.
"""

from __future__ import annotations

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.ledger import format as ledger_format
from tracecore.ledger.access import MAX_SUMMARY
from tracecore.ledger.chain import audit_trail
from tracecore.ledger.env import Txn
from tracecore.ledger.store import Ledger
from tracecore.version import release

VERSION = 2
SUMMARY = "record the format version and owner; build the material-lot index of old batches"
METHOD = "pharmatrace.ledger/MigrateFormat"


def apply(ledger: Ledger, now_ms: int) -> bool:
    """Brings a format-1 ledger to format 2; False (and nothing written) when it already is."""

    def fn(txn: Txn) -> bool:
        if ledger_format.version_in(ledger, txn) >= VERSION:
            return False
        ledger.index_old_batches(txn)
        ledger_format.record(ledger, txn, VERSION)
        summary = f"ledger format {VERSION - 1} -> {VERSION} by pharmatrace {release()}"
        # As format 2 keeps its audit trail: in clear (format 3 seals it).
        audit_trail(ledger.db, None).append(txn, lpb.AuditRecord(
            at_ms=now_ms, peer="local", method=METHOD, summary=summary[:MAX_SUMMARY],
            status="OK"))
        return True

    return ledger.env.write(fn)
