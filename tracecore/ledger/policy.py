"""A tenant's policies: which rules of its market apply, kept in its ledger's ``meta`` database
so that every process reading the ledger sees the same policy."""

from __future__ import annotations

from dataclasses import dataclass

from tracecore.ledger.env import Txn
from tracecore.ledger.store import Ledger

_LABEL_REPLACEMENT = b"policy:label_replacement"
_TIME_ZONE = b"policy:time_zone"


@dataclass(frozen=True, slots=True)
class Policy:
    """``label_replacement``: damaged labels may be replaced by new codes (China's code rules
    allow it, the EU's do not). ``time_zone``: the IANA zone whose midnight cuts the tenant's
    days in reports and date filters; "" for a ledger that never set one (the server's
    default applies)."""

    label_replacement: bool = False
    time_zone: str = ""


def read(ledger: Ledger) -> Policy:
    """The policy in force; the defaults for a tenant that never set one."""
    with ledger.env.read() as txn:
        meta = ledger.db["meta"]
        return Policy(label_replacement=txn.get(_LABEL_REPLACEMENT, db=meta) == b"\x01",
                      time_zone=bytes(txn.get(_TIME_ZONE, db=meta) or b"").decode())


def write(ledger: Ledger, policy: Policy) -> Policy:
    def fn(txn: Txn) -> Policy:
        txn.put(_LABEL_REPLACEMENT, b"\x01" if policy.label_replacement else b"\x00",
                db=ledger.db["meta"])
        # A policy without a zone leaves the stored one: setting market rules is not moving
        # the tenant's day.
        if policy.time_zone:
            txn.put(_TIME_ZONE, policy.time_zone.encode(), db=ledger.db["meta"])
        stored = bytes(txn.get(_TIME_ZONE, db=ledger.db["meta"]) or b"").decode()
        return Policy(label_replacement=policy.label_replacement, time_zone=stored)

    return ledger.env.write(fn)


def day_zone(ledger: Ledger, txn: Txn) -> str:
    """The zone the ledger's daily counters are cut in: its own, or UTC for a ledger that never
    set one (its counters were always kept in UTC days)."""
    return bytes(txn.get(_TIME_ZONE, db=ledger.db["meta"]) or b"UTC").decode()
