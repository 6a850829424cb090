"""The one place that opens LMDB: environments, named databases, growth and error mapping."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from tracecore.errors import LedgerCorrupt, ResourceExhausted, TraceError, Unavailable

T = TypeVar("T")

GIB = 1 << 30
#: Address space reserved at open. LMDB only writes the pages it uses, so a large map costs
#: nothing on disk; it is grown on demand past this, up to ``max_map_size``.
DEFAULT_MAP_SIZE = 16 * GIB
DEFAULT_MAX_MAP_SIZE = 4096 * GIB

Txn = lmdb.Transaction
Database = Any  # lmdb's _Database handle: opaque, only passed back to lmdb


class Env:
    """An LMDB environment with named databases, opened for writing or read-only.

    Writers run whole transactions as functions (``write``) so that a full map can be grown and
    the function run again; readers adopt a map grown by another process (``read``).
    """

    def __init__(
        self,
        path: Path,
        names: tuple[str, ...],
        *,
        owner: str,
        readonly: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        dupsort: tuple[str, ...] = (),
    ) -> None:
        self.owner = owner
        self.readonly = readonly
        self._max_map_size = max(max_map_size, map_size)
        self._lock = threading.Lock()
        if not readonly:
            path.mkdir(parents=True, exist_ok=True)
        elif not (path / "data.mdb").exists():
            raise Unavailable(f"the ledger of tenant {owner!r} does not exist yet")
        try:
            self._env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(names) + 1,
                readonly=readonly,
                create=not readonly,
                readahead=False,
                max_readers=1024,
                sync=True,
                metasync=True,
                lock=True,
            )
            self.dbs: dict[str, Database] = {}
            if readonly:
                # Without a transaction: py-lmdb then opens each handle in its own committed one.
                for name in names:
                    self.dbs[name] = self._env.open_db(
                        name.encode(), create=False, dupsort=name in dupsort
                    )
            else:
                with self._env.begin(write=True) as txn:
                    for name in names:
                        self.dbs[name] = self._env.open_db(
                            name.encode(), txn=txn, dupsort=name in dupsort
                        )
        except lmdb.Error as exc:
            raise _mapped(exc, owner) from exc

    def close(self) -> None:
        self._env.close()

    @property
    def map_size(self) -> int:
        return int(self._env.info()["map_size"])

    def set_map_size(self, size: int) -> None:
        """Grows (or shrinks, if the data fits) the map; used by operators and tests."""
        with self._lock:
            self._env.set_mapsize(size)
            self._max_map_size = max(self._max_map_size, size)

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A read transaction; survives a writer in another process having grown the map."""
        try:
            txn = self._env.begin(buffers=True)
        except lmdb.MapResizedError:
            self._env.set_mapsize(0)
            txn = self._env.begin(buffers=True)
        except lmdb.Error as exc:
            raise _mapped(exc, self.owner) from exc
        try:
            yield txn
        finally:
            txn.abort()

    def write(self, fn: Callable[[Txn], T]) -> T:
        """Runs ``fn`` in one write transaction and commits it durably (fsync) before returning.

        On a full map the transaction is aborted, the map doubled (up to the maximum) and ``fn``
        run again from the start, so ``fn`` must not have effects outside the transaction.
        """
        while True:
            try:
                with self._lock:
                    txn = self._env.begin(write=True)
                    try:
                        result = fn(txn)
                        txn.commit()
                    except BaseException:
                        txn.abort()
                        raise
                return result
            except lmdb.MapFullError as exc:
                if not self._grow():
                    raise ResourceExhausted(
                        f"the ledger of tenant {self.owner!r} is full: raise its map size"
                    ) from exc
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)
            except lmdb.Error as exc:
                raise _mapped(exc, self.owner) from exc

    def copy_to(self, path: Path) -> None:
        """A consistent, compacted copy of the environment, taken while others keep writing."""
        try:
            self._env.copy(str(path), compact=True)
        except lmdb.Error as exc:
            raise _mapped(exc, self.owner) from exc

    def stat(self) -> dict[str, int]:
        """Entries per named database and the bytes in use."""
        out: dict[str, int] = {}
        with self.read() as txn:
            for name, db in self.dbs.items():
                out[name] = int(txn.stat(db)["entries"])
        info = self._env.info()
        out["_bytes"] = (int(info["last_pgno"]) + 1) * int(self._env.stat()["psize"])
        return out

    def _grow(self) -> bool:
        with self._lock:
            size = self.map_size
            if size >= self._max_map_size:
                return False
            self._env.set_mapsize(min(size * 2, self._max_map_size))
            return True


def _mapped(exc: lmdb.Error, owner: str) -> TraceError:
    """lmdb's errors, as the one error tree callers know; no path leaves this function."""
    if isinstance(exc, lmdb.MapFullError):
        return ResourceExhausted(f"the ledger of tenant {owner!r} is full")
    if isinstance(exc, lmdb.DiskError) or _errno_of(exc) in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"no disk space left for the ledger of tenant {owner!r}")
    if isinstance(exc, lmdb.CorruptedError | lmdb.InvalidError | lmdb.VersionMismatchError):
        return LedgerCorrupt(f"the ledger of tenant {owner!r} is damaged or not a ledger")
    if isinstance(exc, lmdb.ReadersFullError):
        return ResourceExhausted(f"too many readers on the ledger of tenant {owner!r}")
    return LedgerCorrupt(f"the ledger of tenant {owner!r} cannot be used ({type(exc).__name__})")


def _errno_of(exc: lmdb.Error) -> int | None:
    text = str(exc)
    if "No space left" in text:
        return errno.ENOSPC
    if "quota" in text.lower():
        return errno.EDQUOT
    return None
