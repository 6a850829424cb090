"""Code pools for packaging lines: mint, commit durably, hand out; resumable by request id."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tracecore.codes import Scheme
from tracecore.errors import InvalidArgument
from tracecore.ledger.code_keys import CodeKeys
from tracecore.ledger.store import Ledger, PoolRequest
from tracecore.ledger.tenants import Tenant
from tracecore.minting import Minter, check_density, density_slot

MAX_COUNT = 10_000_000
MAX_CHUNK = 65_536
#: At most this many chunks go into one commit (see ``issue``).
COMMIT_CHUNKS = 4
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: Mints the next commit's codes of every pool while the writer lanes store and commit.
_MINTING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minting")


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

    Runs on the tenant's writer lane, one chunk per ``next()``. The first commit holds one
    chunk so that the line gets codes at once; later commits hold up to ``COMMIT_CHUNKS``
    chunks, because a commit rewrites most of the code tree's leaf pages (random keys) and
    fewer, larger commits write far less. The next commit's codes are minted on the minting
    thread meanwhile (see ``_Ahead``).
    """
    ledger = tenant.ledger
    record = ledger.open_pool(request, tenant.keys.active.key_id, clock_ms())
    pool, pool_ref = record.pool, record.pool_ref
    scheme, product, count = Scheme(pool.scheme), pool.product, pool.count
    position = 0
    batch = 1
    ahead = _Ahead()
    try:
        while position < count:
            issued = ledger.pool(request.request_id).pool.issued
            fresh = position >= issued
            if not fresh:
                serials = ledger.pool_serials(pool_ref, position, min(issued, position + size))
            else:
                n = min(size * batch, count - position)
                batch = min(batch * 2, COMMIT_CHUNKS)
                serials = _mint_chunk(tenant, ledger, request.request_id, scheme, product,
                                      position, n, min(size * batch, count - position - n),
                                      ahead, clock_ms)
                if not serials:
                    continue
            for start in range(0, len(serials), size):
                part = serials[start:start + size]
                position += len(part)
                yield Chunk(request.request_id, scheme, product, part, position - len(part),
                            position, count, fresh)
    finally:
        ahead.drop()


class _Ahead:
    """Codes of the next commit, minted and encrypted as stored on the minting thread while
    this commit runs.

    The commit's fsync releases the GIL, and so do the compiled HMAC and AES-SIV loops, so the
    next commit's minting fills that wait instead of following it. Minted codes are only
    candidates: they are used when the next commit asks for exactly as many under the same
    signing key, and are otherwise dropped (nothing outside the ledger has seen them).
    """

    __slots__ = ("_key_id", "_keys", "_n")

    def __init__(self) -> None:
        self._key_id = 0
        self._n = 0
        self._keys: Future[tuple[list[bytes], list[bytes]]] | None = None

    def take(self, minter: Minter, codes: CodeKeys, key_id: int, n: int
             ) -> tuple[list[bytes], list[bytes]]:
        """``n`` codes under ``minter`` and their stored form: those minted ahead if they fit,
        else minted now."""
        keys, self._keys = self._keys, None
        if keys is not None and self._key_id == key_id and self._n == n:
            return keys.result()
        if keys is not None:
            keys.cancel()
        return _minted(minter, codes, n)

    def start(self, minter: Minter, codes: CodeKeys, key_id: int, n: int) -> None:
        self._key_id, self._n = key_id, n
        self._keys = _MINTING.submit(_minted, minter, codes, n)

    def drop(self) -> None:
        if self._keys is not None:
            self._keys.cancel()
            self._keys = None


def _mint_chunk(
    tenant: Tenant,
    ledger: Ledger,
    request_id: str,
    scheme: Scheme,
    product: str,
    position: int,
    n: int,
    following: int,
    ahead: _Ahead,
    clock_ms: Callable[[], int],
) -> list[str]:
    """Mints and stores n codes at ``position``, and starts minting the ``following`` codes of
    the next commit; [] when another stream of the request got there first (the caller then
    replays what that stream stored)."""
    key = tenant.keys.active
    check_density(scheme, ledger.minted(product, density_slot(scheme, key.key_id)), n)
    minter = Minter(scheme, product, key.key_id, key.mac)
    keys, in_pool = ahead.take(minter, ledger.codes, key.key_id, n)
    if following > 0:
        ahead.start(minter, ledger.codes, key.key_id, following)
    stored = ledger.append_pool_keys(
        request_id, position, keys, key.key_id, clock_ms(), redraw=minter.mint_keys,
        in_pool=in_pool,
    )
    return minter.serials(stored)


def _minted(minter: Minter, codes: CodeKeys, n: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` new ledger keys and the same keys as the ledger stores them."""
    keys = minter.mint_keys(n)
    return keys, codes.stored_many(keys)
