"""The one place that opens LMDB: environments, named databases, growth and error mapping."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar

import lmdb

from tracecore.errors import (
    InvalidArgument,
    LedgerCorrupt,
    ResourceExhausted,
    TraceError,
    Unavailable,
)
from tracecore.files import fsync_directory

T = TypeVar("T")

GIB = 1 << 30
#: Address space reserved at open. LMDB only writes the pages it uses, so a large map costs
#: nothing on disk; it is grown on demand past this, up to ``max_map_size``.
DEFAULT_MAP_SIZE = 16 * GIB
DEFAULT_MAX_MAP_SIZE = 4096 * GIB

Txn = lmdb.Transaction
Database = Any  # lmdb's _Database handle: opaque, only passed back to lmdb
#: Named databases an environment may open besides its own: replication's outbox and cursor.
EXTRA_DBS = 2


class Capture(Protocol):
    """Sees every write transaction of an environment (tracecore.replication.capture)."""

    def run(self, txn: Txn, fn: Callable[[Txn], T]) -> T: ...
    def committed(self) -> None: ...
    def aborted(self) -> None: ...


class Env:
    """An LMDB environment with named databases, opened for writing or read-only.

    Writers run whole transactions as functions (``write``) so that a full map can be grown and
    the function run again; readers adopt a map grown by another process (``read``).

    LMDB may only change the map (grow, adopt, close) while no transaction of this process is
    open, because that moves the memory every open transaction reads from. So read transactions
    register at a gate; a resize or close waits for them to leave and keeps new ones out.
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
        durable: bool = True,
    ) -> None:
        """``durable=False`` leaves flushing a commit to the operating system: it survives the
        process being killed, not the machine losing power. Only for data that can lag."""
        self.owner = owner
        self.path = path
        self.readonly = readonly
        self._max_map_size = max(max_map_size, map_size)
        self._lock = threading.Lock()  # held by a write transaction, and by any map change
        # The gate's lock, taken directly on the read path: a Condition's own ``with`` is a
        # Python call each way, and every verification opens a read transaction or two.
        self._gate_lock = threading.Lock()
        self._gate = threading.Condition(self._gate_lock)
        self._readers = 0
        self._exclusive = False
        self._closing = False
        self._local = threading.local()
        #: When set, each write transaction runs through it (replication's change capture).
        self.capture: Capture | None = None
        if not readonly:
            path.mkdir(parents=True, exist_ok=True)
        elif not (path / "data.mdb").exists():
            raise Unavailable(f"the ledger of tenant {owner!r} does not exist yet")
        _preallocate(path / "lock.mdb", owner)
        try:
            self._env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(names) + 1 + EXTRA_DBS,
                readonly=readonly,
                create=not readonly,
                readahead=False,
                max_readers=MAX_READERS,
                sync=durable,
                metasync=durable,
                lock=True,
            )
            self.dbs: dict[str, Database] = _Handles(self._env, dupsort) if readonly else {}
            if readonly:
                # Without a transaction: py-lmdb then opens each handle in its own committed one.
                # A database a later release added is missing from a ledger no writer of that
                # release has opened yet: it holds nothing, and is opened once it exists.
                for name in names:
                    with suppress(lmdb.NotFoundError):
                        self.dbs[name] = self._env.open_db(
                            name.encode(), create=False, dupsort=name in dupsort
                        )
            else:
                with self._env.begin(write=True) as txn:
                    for name in names:
                        self.dbs[name] = self._env.open_db(
                            name.encode(), txn=txn, dupsort=name in dupsort
                        )
            # Reader slots left by processes that died (a killed verification worker) would
            # pin old pages forever and make the file grow.
            self._env.reader_check()
        except lmdb.Error as exc:
            raise _mapped(exc, owner) from exc

    def close(self) -> None:
        """Closes the environment once reads and writes in progress are done; from then on
        every read or write fails Unavailable."""
        with self._gate:
            if self._closing:
                return
            self._closing = True
            self._gate.notify_all()
        self._exclusively(self._env.close)

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def map_size(self) -> int:
        self._check_open()
        return int(self._env.info()["map_size"])

    @property
    def max_map_size(self) -> int:
        return self._max_map_size

    def set_map_size(self, size: int) -> None:
        """Grows (or shrinks, if the data fits) the map; used by operators and tests."""
        self._exclusively(lambda: self._env.set_mapsize(size))
        self._max_map_size = max(self._max_map_size, size)

    def set_max_map_size(self, size: int) -> int:
        """The size the map may grow to from now on (never below its current size); returned."""
        self._max_map_size = max(size, self.map_size)
        return self._max_map_size

    def used_bytes(self) -> int:
        """Bytes of the map holding data: the file's size after a compacting copy, at most."""
        self._check_open()
        return (int(self._env.info()["last_pgno"]) + 1) * int(self._env.stat()["psize"])

    def read(self) -> _Reading:
        """A read transaction, ``with env.read() as txn``; survives a writer in another process
        having grown the map."""
        return _Reading(self)

    def _begin_buffers(self) -> Txn:
        return self._env.begin(buffers=True)

    def write(self, fn: Callable[[Txn], T]) -> T:
        """Runs ``fn`` in one write transaction and commits it durably (fsync) before returning.

        On a full map the transaction is aborted, the map doubled (up to the maximum) and ``fn``
        run again from the start, so ``fn`` must not have effects outside the transaction.
        """
        while True:
            try:
                with self._lock:
                    self._check_open()
                    capture = self.capture
                    txn = self._env.begin(write=True)
                    try:
                        result = fn(txn) if capture is None else capture.run(txn, fn)
                        txn.commit()
                    except BaseException:
                        txn.abort()
                        if capture is not None:
                            capture.aborted()
                        raise
                    if capture is not None:
                        capture.committed()
                return result
            except lmdb.MapFullError as exc:
                if not self._grow():
                    raise ResourceExhausted(
                        f"the ledger of tenant {self.owner!r} reached its size limit "
                        f"({self._max_map_size} bytes): raise it with `pharmatrace operator "
                        "ledger-limit` or PHARMATRACE_MAX_MAP_SIZE; reads keep working"
                    ) from exc
            except lmdb.MapResizedError:
                # Another process writing this environment grew the map: adopt its size.
                self._exclusively(lambda: self._env.set_mapsize(0))
            except lmdb.Error as exc:
                raise _mapped(exc, self.owner, self.path) from exc

    def open_db(self, name: str) -> Database:
        """Opens (creating it if needed) a named database beyond those given at open; at most
        ``EXTRA_DBS`` of them."""
        if name in self.dbs:
            return self.dbs[name]

        def fn() -> None:
            with self._env.begin(write=True) as txn:
                self.dbs[name] = self._env.open_db(name.encode(), txn=txn)

        self._exclusively(fn)
        return self.dbs[name]

    def info(self) -> dict[str, int]:
        """LMDB's environment info: map size, last page, last transaction id, readers."""
        self._check_open()
        info: dict[str, int] = dict(self._env.info())  # type: ignore[arg-type]
        return info

    def copy_to(self, path: Path) -> None:
        """A consistent, compacted copy of the environment into the existing, empty directory
        ``path``, taken in one read transaction while others keep writing."""

        def copy() -> None:
            self._env.copy(str(path), compact=True)

        self._begin_read(copy)
        self._leave()

    def stat(self) -> dict[str, int]:
        """Entries per named database and the bytes in use."""
        out: dict[str, int] = {}
        with self.read() as txn:
            for name, db in self.dbs.items():
                out[name] = int(txn.stat(db)["entries"])
        out["_bytes"] = self.used_bytes()
        return out

    def _grow(self) -> bool:
        size = self.map_size
        if size >= self._max_map_size:
            return False
        self._exclusively(lambda: self._env.set_mapsize(min(size * 2, self._max_map_size)))
        return True

    # -- the gate: read transactions in, map changes alone -------------------------------------

    def _begin_read(self, begin: Callable[[], T]) -> T:
        """Registers a reader and runs ``begin`` (which opens a read transaction); on return the
        caller is registered and must ``_leave``. Adopts a map grown by another process."""
        for attempt in range(2):
            self._enter()
            try:
                return begin()
            except lmdb.MapResizedError:
                self._leave()
                if attempt or getattr(self._local, "depth", 0):
                    # This thread still reads an older transaction: the map cannot move now.
                    raise Unavailable(f"the ledger of tenant {self.owner!r} was resized while "
                                      "being read; retry") from None
                self._exclusively(lambda: self._env.set_mapsize(0))
            except lmdb.Error as exc:
                self._leave()
                raise _mapped(exc, self.owner) from exc
            except BaseException:
                self._leave()
                raise
        raise AssertionError("unreachable")

    def _enter(self) -> None:
        depth = getattr(self._local, "depth", 0)
        with self._gate_lock:
            # A nested read on this thread goes in even past a waiting resize: that resize is
            # waiting for this thread's outer read anyway.
            while self._exclusive and not self._closing and depth == 0:
                self._gate.wait()
            if self._closing:
                raise Unavailable(_closed_message(self.owner))
            self._readers += 1
        self._local.depth = depth + 1

    def _leave(self) -> None:
        self._local.depth -= 1
        with self._gate_lock:
            self._readers -= 1
            # Only a resize or a close (``_exclusive``) waits for the last reader to leave: a
            # read needs no notification otherwise, and every read leaves through here.
            if not self._readers and self._exclusive:
                self._gate.notify_all()

    def _exclusively(self, change: Callable[[], object]) -> None:
        """Runs ``change`` to the map with no transaction of this process open."""
        if getattr(self._local, "depth", 0):
            raise Unavailable(f"the ledger of tenant {self.owner!r} cannot be resized or closed "
                              "while this thread reads it")
        with self._lock:
            with self._gate:
                self._exclusive = True
                while self._readers:
                    self._gate.wait()
            try:
                change()
            except lmdb.Error as exc:
                raise _mapped(exc, self.owner) from exc
            finally:
                with self._gate:
                    self._exclusive = False
                    self._gate.notify_all()

    def _check_open(self) -> None:
        if self._closing:
            raise Unavailable(_closed_message(self.owner))


def compact(path: Path, owner: str) -> None:
    """Rewrites the environment in directory ``path`` with only its live pages, in place: the
    pages LMDB freed keep whatever they held (such as records a migration rewrote) until they
    are reused. No process may have it open; a kill leaves either file whole."""
    staging = path / ".compact"
    staging.mkdir(exist_ok=True)
    (staging / "data.mdb").unlink(missing_ok=True)
    env = Env(path, (), owner=owner, readonly=True)
    try:
        env.copy_to(staging)
    finally:
        env.close()
    fd = os.open(staging / "data.mdb", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging / "data.mdb", path / "data.mdb")
    staging.rmdir()
    fsync_directory(path)


def in_use(path: Path) -> bool:
    """Whether any process has the LMDB environment in directory ``path`` open.

    LMDB holds a shared lock on the first byte of ``lock.mdb`` for as long as a process has the
    environment open, and the kernel drops it when that process dies, even by SIGKILL. Never
    ask about an environment this process has open: closing the probe's descriptor would drop
    this process's own locks on the file.
    """
    try:
        fd = os.open(path / "lock.mdb", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return True
            raise
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)
        return False
    finally:
        os.close(fd)


def _closed_message(owner: str) -> str:
    return (f"the ledger of tenant {owner!r} is closed (offline for maintenance, being reopened "
            "after a restore or a change of writer, or the service is stopping); retry later")


def _mapped(exc: lmdb.Error, owner: str, path: Path | None = None) -> TraceError:
    """lmdb's errors, as the one error tree callers know; no path leaves this function.

    A commit that finds the filesystem full fails with a bare I/O error on some filesystems
    (tmpfs, overlay), so a failed write on a nearly full filesystem counts as a full disk.
    """
    if isinstance(exc, lmdb.MapFullError):
        return ResourceExhausted(f"the ledger of tenant {owner!r} is full")
    if (isinstance(exc, lmdb.DiskError)
            or _errno_of(exc) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            or (path is not None and disk_nearly_full(path))):
        return ResourceExhausted(
            f"no disk space left for the ledger of tenant {owner!r}: free space on the data "
            "directory's filesystem or lower the tenants' size limits; reads keep working")
    if isinstance(exc, lmdb.CorruptedError | lmdb.InvalidError | lmdb.VersionMismatchError):
        return LedgerCorrupt(f"the ledger of tenant {owner!r} is damaged or not a ledger")
    if isinstance(exc, lmdb.BadValsizeError):
        return InvalidArgument("a key is empty or longer than the ledger allows")
    if isinstance(exc, lmdb.ReadersFullError):
        return ResourceExhausted(f"too many readers on the ledger of tenant {owner!r}")
    return LedgerCorrupt(f"the ledger of tenant {owner!r} cannot be used ({type(exc).__name__})")


MAX_READERS = 1024
#: The size lmdb gives a lock file: a header and one 64-byte slot per reader.
LOCK_FILE_BYTES = 128 + 64 * MAX_READERS


def _preallocate(lock_file: Path, owner: str) -> None:
    """Gives every page of the memory-mapped lock file its disk blocks now: a process touching a
    reader slot whose page has no block on a full filesystem is killed with SIGBUS."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return  # a read-only directory: lmdb reports what it cannot open
    try:
        os.posix_fallocate(fd, 0, max(LOCK_FILE_BYTES, os.fstat(fd).st_size))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceExhausted(
                f"no disk space left to open the ledger of tenant {owner!r}: free space on the "
                "data directory's filesystem") from None
    finally:
        os.close(fd)


#: Below this much free space a failed write is taken for a full disk.
NEARLY_FULL_BYTES = 1 << 20


def disk_free(path: Path) -> tuple[int, int]:
    """(bytes free to this process, bytes in all) on the filesystem holding ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def disk_nearly_full(path: Path) -> bool:
    try:
        free, _ = disk_free(path)
    except OSError:
        return False
    return free < NEARLY_FULL_BYTES


def _errno_of(exc: lmdb.Error) -> int | None:
    text = str(exc)
    if "No space left" in text:
        return errno.ENOSPC
    if "File too large" in text:  # a file size limit: the disk is full as far as we may use it
        return errno.EFBIG
    if "quota" in text.lower():
        return errno.EDQUOT
    return None


class _Handles(dict[str, "Database"]):
    """A read-only environment's database handles: one the writer created after this reader
    opened the environment is opened on first use (usable by transactions begun after that);
    one that does not exist is a KeyError."""

    def __init__(self, env: lmdb.Environment, dupsort: tuple[str, ...]) -> None:
        super().__init__()
        self._env = env
        self._dupsort = dupsort

    def __missing__(self, name: str) -> Database:
        try:
            handle: Database = self._env.open_db(name.encode(), create=False,
                                                 dupsort=name in self._dupsort)
        except lmdb.NotFoundError:
            raise KeyError(name) from None
        self[name] = handle
        return handle


class _Reading:
    """``Env.read``'s context: a class rather than a generator, as a verification opens a few
    read transactions and the generator's machinery cost more than LMDB's begin and abort."""

    __slots__ = ("_env", "_txn")

    def __init__(self, env: Env) -> None:
        self._env = env

    def __enter__(self) -> Txn:
        env = self._env
        env._enter()
        try:
            self._txn: Txn = env._env.begin(buffers=True)
        except lmdb.Error:
            # A map grown by another process, or an error to map: the careful way, again.
            env._leave()
            self._txn = env._begin_read(env._begin_buffers)
        except BaseException:
            env._leave()
            raise
        return self._txn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        try:
            if isinstance(exc, lmdb.Error):
                raise _mapped(exc, self._env.owner) from exc
        finally:
            self._txn.abort()
            self._env._leave()
