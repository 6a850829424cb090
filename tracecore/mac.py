"""HMAC-SHA256 with the key set-up done once per key, not once per message.

``hmac.digest`` hashes the padded key (two SHA-256 blocks) on every call. A code's tag message
fits in one block, so keeping the inner and outer states after the key blocks and copying them
per message halves the compression work; bench/codec.py measures it against ``hmac.digest``.
Where the compiled extensions are built, a Mac also holds the same key in C (``native``, a
``tracecore._speedups._hmac.HmacKey``), for the loops that tag or check a whole batch in one
call (``_speedups.minting``, ``_speedups._tags``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tracecore._speedups import load

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

    from tracecore._speedups._hmac import HmacKey

_BLOCK = 64
_hmac = load("_hmac")


class Mac:
    """HMAC-SHA256 under one secret; ``digest(m) == hmac.digest(secret, m, "sha256")``."""

    __slots__ = ("_inner", "_outer", "native")

    def __init__(self, secret: bytes) -> None:
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self.native: HmacKey | None = _hmac.HmacKey(padded) if _hmac is not None else None
        """The same key in C, for compiled loops; None without the extension."""

    def __repr__(self) -> str:
        return "Mac(<secret>)"

    def states(self) -> tuple[Hash, Hash]:
        """The inner and outer SHA-256 states after the key blocks, for a loop that copies
        them per message itself (never to be updated in place)."""
        return self._inner, self._outer

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def digests(self, messages: Iterable[bytes]) -> list[bytes]:
        """The HMAC of each message, in order: the loop for minting and batch checks."""
        inner_copy = self._inner.copy
        outer_copy = self._outer.copy
        out: list[bytes] = []
        append = out.append
        for message in messages:
            inner = inner_copy()
            inner.update(message)
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.digest())
        return out
