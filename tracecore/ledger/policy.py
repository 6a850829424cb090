"""A tenant's policies: which rules of its market apply, kept in its ledger's ``meta`` database
so that every process reading the ledger sees the same policy."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tracecore import localday
from tracecore.ledger.counters import recount_flows
from tracecore.ledger.env import Txn
from tracecore.ledger.store import Ledger

_LABEL_REPLACEMENT = b"policy:label_replacement"
_DISPENSE_ELSEWHERE = b"policy:dispense_elsewhere"
_TIME_ZONE = b"policy:time_zone"


@dataclass(frozen=True, slots=True)
class Policy:
    """``label_replacement``: damaged labels may be replaced by new codes (China's code rules
    allow it, the EU's do not). ``dispense_elsewhere``: a party may dispense a pack it does
    not hold, and each time an alert is raised (refused otherwise). ``time_zone``: the IANA
    zone whose midnight cuts the tenant's days in reports and date filters; "" for a ledger
    that never set one (the server's default applies)."""

    label_replacement: bool = False
    dispense_elsewhere: bool = False
    time_zone: str = ""


def read(ledger: Ledger) -> Policy:
    """The policy in force; the defaults for a tenant that never set one."""
    with ledger.env.read() as txn:
        return read_in(ledger, txn)


def read_in(ledger: Ledger, txn: Txn) -> Policy:
    """The policy in force, read in the caller's transaction."""
    meta = ledger.db["meta"]
    return Policy(label_replacement=txn.get(_LABEL_REPLACEMENT, db=meta) == b"\x01",
                  dispense_elsewhere=txn.get(_DISPENSE_ELSEWHERE, db=meta) == b"\x01",
                  time_zone=bytes(txn.get(_TIME_ZONE, db=meta) or b"").decode())


def write(ledger: Ledger, label_replacement: bool | None = None,
          dispense_elsewhere: bool | None = None, time_zone: str | None = None) -> Policy:
    """Sets the policies given (None keeps one as it is); the policy now in force. Setting
    market rules never moves the tenant's day: only a zone given does, and then the daily
    counters are recounted in the new zone in the same transaction, so that no report ever
    reads days cut in two zones."""
    if time_zone:
        localday.zone(time_zone)

    def fn(txn: Txn) -> Policy:
        policy = read_in(ledger, txn)
        if time_zone and time_zone != day_zone(ledger, txn):
            recount_in(ledger, txn, time_zone)
        if label_replacement is not None:
            policy = replace(policy, label_replacement=label_replacement)
        if dispense_elsewhere is not None:
            policy = replace(policy, dispense_elsewhere=dispense_elsewhere)
        if time_zone:
            policy = replace(policy, time_zone=time_zone)
        meta = ledger.db["meta"]
        txn.put(_LABEL_REPLACEMENT, b"\x01" if policy.label_replacement else b"\x00", db=meta)
        txn.put(_DISPENSE_ELSEWHERE, b"\x01" if policy.dispense_elsewhere else b"\x00",
                db=meta)
        if policy.time_zone:
            txn.put(_TIME_ZONE, policy.time_zone.encode(), db=meta)
        return policy

    return ledger.env.write(fn)


def day_zone(ledger: Ledger, txn: Txn) -> str:
    """The zone the ledger's daily counters are cut in: its own, or UTC for a ledger that never
    set one (its counters were always kept in UTC days)."""
    return bytes(txn.get(_TIME_ZONE, db=ledger.db["meta"]) or b"UTC").decode()


def recount(ledger: Ledger) -> tuple[str, int]:
    """Rebuilds the daily counters in the tenant's zone: (the zone, daily counters stored)."""

    def fn(txn: Txn) -> tuple[str, int]:
        zone = day_zone(ledger, txn)
        return zone, recount_in(ledger, txn, zone)

    return ledger.env.write(fn)


def recount_in(ledger: Ledger, txn: Txn, zone: str) -> int:
    """Daily counters recounted with days cut at ``zone``'s midnight; how many are stored."""
    return recount_flows(txn, ledger.db["counters"], lambda ms: localday.day_of(ms, zone))
