"""Finished resolver answers kept in a worker, by what in the request they depend on, for as
long as the catalogue records they were made from are unchanged.

A Digital Link's answer depends on the request (its root, path, query and the headers the
resolver reads) and on what the use case read from the catalogue: the tenants that registered
the product and a tenant's record of it. The use case is run through a ``Recording``
catalogue, which notes each of those reads and the object it returned; ``FrontdoorReads``
returns the very same object for as long as a record is unchanged (reading it again after
its reuse bound), so an answer still holds when every noted read returns what it did then,
by identity. A changed record (a link added, removed or retitled, another tenant registering
the product) is read within the reuse bound and the answer is made again.

Only answers for products some tenant registered are kept (a read that found nothing is never
kept, nor is an error), and the whole is bounded in bytes, the oldest going first, so neither
made-up GTINs nor made-up serials of a real one can fill memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pharmatrace.v1 import common_pb2 as pb

from tracecore.usecases.resolver import Catalogue

#: What one kept answer costs beyond the bytes of its key, headers and body (the objects
#: holding them and the reads it was made from), counted so that the bound holds for many
#: small answers too: a kept redirect takes about 1.4 kB in all (tracemalloc).
_OVERHEAD = 1050
#: An answer larger than this (a linkset of many links) is made each time, not kept.
_LARGEST = 16 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished answer: its status, its headers (content-length among them) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def size(self) -> int:
        """Its bytes, as the bound counts them."""
        return len(self.body) + sum(len(v) for _, v in self.headers)


class Kept(Protocol):
    """What the cache keeps: an ``Answer``, or anything else that says its size."""

    @property
    def size(self) -> int: ...


K = TypeVar("K", bound=Kept)
#: What in a request an answer depends on, as strings, bytes and flags.
Key = tuple[str | bytes | bool, ...]
#: A catalogue read noted by ``Recording``: the method, its arguments, and what it returned.
_Read = tuple[Callable[..., Any], tuple[str, ...], object]


class Recording:
    """The resolver's catalogue over the worker's (``FrontdoorReads``), noting what each read
    returned. Reads it cannot check again by identity (SSCC owners: nothing is kept of them)
    make the answer one not to keep."""

    __slots__ = ("_reads", "keepable", "seen")

    def __init__(self, reads: Catalogue) -> None:
        self._reads = reads
        self.seen: list[_Read] = []
        self.keepable = True

    def owners(self, product_id: str) -> Sequence[str]:
        found = self._reads.owners(product_id)
        if not found:
            self.keepable = False
        self.seen.append((self._reads.owners, (product_id,), found))
        return found

    def product(self, tenant: str, product_id: str) -> pb.Product:
        found = self._reads.product(tenant, product_id)
        self.seen.append((self._reads.product, (tenant, product_id), found))
        return found

    def sscc_owners(self, code: str) -> Sequence[str]:
        self.keepable = False
        return self._reads.sscc_owners(code)


class AnswerCache(Generic[K]):
    """Answers (or answer templates) by request key, each with the catalogue reads it was made
    from; at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: dict[Key, tuple[K, tuple[_Read, ...], int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """What the kept answers count for against the bound."""
        return self._bytes

    def get(self, key: Key) -> K | None:
        """The answer kept under ``key`` if every read it was made from still returns the same
        record; a stale one is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        for read, args, seen in entry[1]:
            if read(*args) is not seen:
                self._drop(key)
                return None
        return entry[0]

    def reads(self, key: Key) -> tuple[_Read, ...]:
        """The catalogue reads what is kept under ``key`` was made from (none if nothing is)."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None else ()

    def put(self, key: Key, answer: K, made_from: Recording) -> None:
        """Keeps ``answer`` if what it was made from can be checked again, and it fits."""
        if not made_from.keepable or not made_from.seen:
            return
        cost = _OVERHEAD + answer.size + sum(
            len(part) for part in key if not isinstance(part, bool))
        if cost > _LARGEST or cost > self._max_bytes:
            return
        self._drop(key)
        while self._bytes + cost > self._max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[key] = (answer, tuple(made_from.seen), cost)
        self._bytes += cost

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]

