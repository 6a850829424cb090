"""Code pools for packaging lines: mint, commit durably, hand out; resumable by request id."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass

from tracecore.codes import Scheme
from tracecore.errors import InvalidArgument
from tracecore.ledger.store import Ledger, PoolRequest
from tracecore.ledger.tenants import Tenant
from tracecore.minting import Minter, check_density, density_slot

MAX_COUNT = 10_000_000
MAX_CHUNK = 65_536
#: At most this many chunks go into one commit (see ``issue``).
COMMIT_CHUNKS = 4
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive codes of one pool, already durable in the ledger."""

    request_id: str
    scheme: Scheme
    product: str
    serials: list[str]
    offset: int
    total: int
    count: int
    fresh: bool     # minted now, not replayed from an earlier attempt of the request


def check_request_id(text: str) -> str:
    """A pool's idempotency key: 1 to 64 of A-Z a-z 0-9 . _ : -"""
    if not _REQUEST_ID.fullmatch(text):
        raise InvalidArgument("is required: 1 to 64 characters of A-Z a-z 0-9 . _ : -",
                              field="request_id")
    return text


def pool_request(
    request_id: str, product: str, lot: str, level: int, count: int, *, requester: str = "",
    requester_party: str = "",
) -> PoolRequest:
    """A validated pool request; InvalidArgument naming the field otherwise."""
    check_request_id(request_id)
    if not 1 <= count <= MAX_COUNT:
        raise InvalidArgument(f"must be 1 to {MAX_COUNT:,}", field="count")
    if not 1 <= level <= 4:
        raise InvalidArgument("unknown packaging level", field="level")
    if len(lot) > 20:
        raise InvalidArgument("at most 20 characters", field="lot")
    return PoolRequest(request_id, product, lot, level, count, requester, requester_party)


def chunk_size(requested: int) -> int:
    if requested == 0:
        return MAX_CHUNK
    if not 1 <= requested <= MAX_CHUNK:
        raise InvalidArgument(f"must be 1 to {MAX_CHUNK:,}", field="chunk_size")
    return requested


def issue(
    tenant: Tenant,
    request: PoolRequest,
    size: int,
    clock_ms: Callable[[], int],
) -> Generator[Chunk, None, None]:
    """The pool's codes in order, chunk by chunk: first those already issued under the request id
    (a retry), then newly minted ones. New codes are committed (fsync) before any chunk holding
    them is yielded.

    Runs on the ledger's writer thread, one chunk per ``next()``. The first commit holds one
    chunk so that the line gets codes at once; later commits hold up to ``COMMIT_CHUNKS``
    chunks, because a commit rewrites most of the code tree's leaf pages (random keys) and
    fewer, larger commits write far less.
    """
    ledger = tenant.ledger
    record = ledger.open_pool(request, tenant.keys.active.key_id, clock_ms())
    pool, pool_ref = record.pool, record.pool_ref
    scheme, product, count = Scheme(pool.scheme), pool.product, pool.count
    position = 0
    batch = 1
    while position < count:
        issued = ledger.pool(request.request_id).pool.issued
        fresh = position >= issued
        if not fresh:
            serials = ledger.pool_serials(pool_ref, position, min(issued, position + size))
        else:
            serials = _mint_chunk(tenant, ledger, request.request_id, scheme, product, position,
                                  min(size * batch, count - position), clock_ms)
            if not serials:
                continue
            batch = min(batch * 2, COMMIT_CHUNKS)
        for start in range(0, len(serials), size):
            part = serials[start:start + size]
            position += len(part)
            yield Chunk(request.request_id, scheme, product, part, position - len(part),
                        position, count, fresh)


def _mint_chunk(
    tenant: Tenant,
    ledger: Ledger,
    request_id: str,
    scheme: Scheme,
    product: str,
    position: int,
    n: int,
    clock_ms: Callable[[], int],
) -> list[str]:
    """Mints and stores n codes at ``position``; [] when another stream of the request got there
    first (the caller then replays what that stream stored)."""
    key = tenant.keys.active
    check_density(scheme, ledger.minted(product, density_slot(scheme, key.key_id)), n)
    minter = Minter(scheme, product, key.key_id, key.mac)
    return ledger.append_pool_codes(
        request_id, position, minter.mint(n), key.key_id, clock_ms(), redraw=minter.mint
    )
