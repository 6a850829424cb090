"""HMAC-SHA256 with the key set-up done once per key, not once per message.

``hmac.digest`` hashes the padded key (two SHA-256 blocks) on every call. A code's tag message
fits in one block, so keeping the inner and outer states after the key blocks and copying them
per message halves the compression work; bench/codec.py measures it against ``hmac.digest``.
Where the compiled ``tracecore._speedups.minting`` is built, a ``Mac`` also holds its twin of
these states (``compiled``), for loops that tag a whole batch in one call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tracecore._speedups import load

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

    from tracecore._speedups import minting as compiled_minting

_BLOCK = 64
_COMPILED = load("minting")


class Mac:
    """HMAC-SHA256 under one secret; ``digest(m) == hmac.digest(secret, m, "sha256")``."""

    __slots__ = ("_compiled", "_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK, b"\0")
        inner = bytes(b ^ 0x36 for b in padded)
        outer = bytes(b ^ 0x5C for b in padded)
        self._inner = hashlib.sha256(inner)
        self._outer = hashlib.sha256(outer)
        self._compiled = _COMPILED.Hmac(inner, outer) if _COMPILED is not None else None

    def __repr__(self) -> str:
        return "Mac(<secret>)"

    def states(self) -> tuple[Hash, Hash]:
        """The inner and outer SHA-256 states after the key blocks, for a loop that copies
        them per message itself (never to be updated in place)."""
        return self._inner, self._outer

    @property
    def compiled(self) -> compiled_minting.Hmac | None:
        """The same key's states in the compiled module; None when it is not built."""
        return self._compiled

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
