"""One committed write transaction of a tenant's ledger as a change record: every put and
delete it made, per named database, in order, numbered by a per-tenant commit sequence.

A record is cut into parts that each fit one stream message; the replica applies a commit once
it holds all of its parts, in one transaction, so it never shows half a commit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from tracecore.errors import LedgerCorrupt

#: Kinds of change.
PUT = 1
DELETE = 2  # the key (every value of a dupsort key), or one value when a value is given

_MAGIC = b"PTC1"
_HEADER = struct.Struct(">4sQQQ")  # magic, epoch, commit sequence, committed at (ms)
_OP = struct.Struct(">BBHI")      # kind, database index, key length, value length
_NAME = struct.Struct(">B")
#: Largest part: under NATS's default 1 MiB message limit, with room for the headers.
MAX_PART = 900 * 1024


@dataclass
class Change:
    """One transaction's changes: ``ops`` are (kind, database, key, value) in the order made."""

    epoch: int
    seq: int
    committed_at_ms: int
    ops: list[tuple[int, str, bytes, bytes]] = field(default_factory=list)

    def encode(self) -> bytes:
        names: dict[str, int] = {}
        for _, db, _, _ in self.ops:
            names.setdefault(db, len(names))
        out = [_HEADER.pack(_MAGIC, self.epoch, self.seq, self.committed_at_ms),
               _NAME.pack(len(names))]
        for name in names:
            raw = name.encode()
            out.append(_NAME.pack(len(raw)) + raw)
        pack = _OP.pack
        for kind, db, key, value in self.ops:
            out.append(pack(kind, names[db], len(key), len(value)))
            out.append(key)
            out.append(value)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Change:
        try:
            magic, epoch, seq, at = _HEADER.unpack_from(data, 0)
            if magic != _MAGIC:
                raise ValueError("not a change record")
            pos = _HEADER.size
            (count,) = _NAME.unpack_from(data, pos)
            pos += 1
            names: list[str] = []
            for _ in range(count):
                (n,) = _NAME.unpack_from(data, pos)
                names.append(data[pos + 1:pos + 1 + n].decode())
                pos += 1 + n
            ops: list[tuple[int, str, bytes, bytes]] = []
            end = len(data)
            unpack = _OP.unpack_from
            while pos < end:
                kind, index, klen, vlen = unpack(data, pos)
                pos += _OP.size
                key = data[pos:pos + klen]
                pos += klen
                value = data[pos:pos + vlen]
                pos += vlen
                ops.append((kind, names[index], key, value))
            if pos != end:
                raise ValueError("truncated")
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise LedgerCorrupt(f"a change record cannot be decoded ({exc})") from None
        return cls(epoch, seq, at, ops)


def split(data: bytes, size: int = MAX_PART) -> list[bytes]:
    """An encoded record cut into parts of at most ``size`` bytes (at least one part)."""
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


@dataclass
class Assembler:
    """Collects the parts of commits as they arrive, in order; hands out whole commits."""

    _seq: int = 0
    _parts: list[bytes] = field(default_factory=list)

    def add(self, seq: int, part: int, parts: int, data: bytes) -> bytes | None:
        """The whole record once its last part is in, else None. A part that does not follow
        the one before (a commit's parts resent from the start) restarts that commit."""
        if part == 0 or seq != self._seq:
            self._seq, self._parts = seq, []
        if part != len(self._parts):
            return None
        self._parts.append(data)
        if len(self._parts) < parts:
            return None
        whole = b"".join(self._parts)
        self._parts = []
        return whole


def iter_parts(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(part index, part count, bytes) for an encoded record."""
    pieces = split(data)
    for i, piece in enumerate(pieces):
        yield i, len(pieces), piece
