"""A tenant's policies: which rules of its market apply, kept in its ledger's ``meta`` database
so that every process reading the ledger sees the same policy."""

from __future__ import annotations

from dataclasses import dataclass

from tracecore.ledger.env import Txn
from tracecore.ledger.store import Ledger

_LABEL_REPLACEMENT = b"policy:label_replacement"


@dataclass(frozen=True, slots=True)
class Policy:
    """``label_replacement``: damaged labels may be replaced by new codes (China's code rules
    allow it, the EU's do not)."""

    label_replacement: bool = False


def read(ledger: Ledger) -> Policy:
    """The policy in force; the defaults for a tenant that never set one."""
    with ledger.env.read() as txn:
        return Policy(label_replacement=txn.get(_LABEL_REPLACEMENT,
                                                db=ledger.db["meta"]) == b"\x01")


def write(ledger: Ledger, policy: Policy) -> Policy:
    def fn(txn: Txn) -> Policy:
        txn.put(_LABEL_REPLACEMENT, b"\x01" if policy.label_replacement else b"\x00",
                db=ledger.db["meta"])
        return policy

    return ledger.env.write(fn)
