"""Who scanned, for counting public scans: a keyed hash of the client, per tenant and day;
and the keys the scan statistics are kept under.

A public scan (anonymous Verify, the check page) counts once per client per code per day, so
that one client scanning a code a thousand times does not look like a thousand consumers to
the scan statistics and the clone checks. The client (its address, or its certificate) is kept
only as an HMAC under a secret derived from the key-encryption key: whoever reads the scan
statistics learns neither who scanned nor whether the same client came back another day.
"""

from __future__ import annotations

import functools
import hmac
from typing import Final

#: The purpose the scan statistics' secret is derived for (``KeySource.derived_key``); the
#: keys for clients and for codes are derived from it.
KEY_PURPOSE: Final = "scan statistics"
DAY_MS: Final = 86_400_000
DAY_BYTES: Final = 4
HASH_BYTES: Final = 12
#: A client tag: the UTC day (big-endian, so tags sort by day), then the truncated HMAC.
TAG_BYTES: Final = DAY_BYTES + HASH_BYTES
#: Client tags a process keeps, the least recently used going first: made-up clients (a
#: flood of addresses) cost no more memory than this.
_TAGS_KEPT: Final = 16_384


def day_of(now_ms: int) -> int:
    """Days since 1970-01-01 UTC."""
    return now_ms // DAY_MS


def client_tag(key: bytes, tenant: str, client: str, now_ms: int) -> bytes:
    """The tag of ``client`` (an address without its port, or a certificate's identity; ""
    for a client that could not be told apart, which then counts as one) scanning in
    ``tenant`` on the day of ``now_ms``: worked out once a day per client, not on every scan
    (a consumer checks a few packs in a row)."""
    return _day_tag(key, tenant, client, day_of(now_ms))


@functools.lru_cache(maxsize=_TAGS_KEPT)
def _day_tag(key: bytes, tenant: str, client: str, day: int) -> bytes:
    digest = hmac.digest(key, b"\0".join((tenant.encode(), str(day).encode(),
                                          client.encode())), "sha256")
    return day.to_bytes(DAY_BYTES, "big") + digest[:HASH_BYTES]


def peer_host(peer: str) -> str:
    """A gRPC peer's address without its port: 'ipv4:1.2.3.4:5678' -> 'ipv4:1.2.3.4',
    'ipv6:[::1]:5678' -> 'ipv6:[::1]'; a client's port changes with every connection."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


def clients_key(secret: bytes) -> bytes:
    """The key public clients are hashed under, from the scan statistics' secret."""
    return hmac.digest(secret, b"public clients", "sha256")


def codes_key(secret: bytes, tenant: str) -> bytes:
    """The key a tenant's codes are hashed under in its scan statistics
    (``tracecore.ledger.observations``), from the scan statistics' secret."""
    return hmac.digest(secret, b"codes\0" + tenant.encode(), "sha256")
