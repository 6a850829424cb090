"""Ledgers opened as the servers the tests start open them: with the development key source."""

from __future__ import annotations

from functools import cache

from tracecore.keys import KeySource
from tracecore.ledger.code_keys import PURPOSE, CodeKeys


@cache
def _secret() -> bytes:
    return KeySource.dev().derived_key(PURPOSE)


def dev_codes(tenant: str) -> CodeKeys:
    """How a ledger of ``tenant`` stores codes under the development key passphrase."""
    return CodeKeys(_secret(), tenant)
