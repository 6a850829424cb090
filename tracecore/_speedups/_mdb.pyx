"""LMDB's reads, and a statistics flush's writes, called from the compiled loops on the very
transaction and database py-lmdb opened, through py-lmdb's own copy of LMDB.

py-lmdb links LMDB in statically and exports none of it, but each of its environments keeps a
pointer to the table of LMDB functions of the engine that serves it (``struct MdbApi``), and
its transactions and databases keep their ``MDB_txn *`` and ``MDB_dbi``. A loop over thousands
of codes reads each record by calling ``mdb_get`` / ``mdb_cursor_get`` through that table,
where py-lmdb's ``get`` would also parse its arguments, release and take the GIL and make a
buffer object for each code; a flush writes each code's totals with ``mdb_cursor_put`` (over
the stored record in place, ``MDB_CURRENT``), where py-lmdb's ``replace`` then ``put`` would
write twice and make two bytes objects. A write tells py-lmdb the transaction changed (its
cursors look again), and an error is raised as py-lmdb raises it (``raise_error``:
``MapFullError`` makes ``Env.write`` grow the map and run the flush again). The LMDB that runs is the one py-lmdb runs (same version, same
patches, same engine for the environment); only the object layouts (``_pylmdb.h``) are ours.

Guards: only py-lmdb 3.0.0 (``KNOWN``) is read this way; the first use of an engine compares
what the layouts give with what py-lmdb answers (the engine's version with
``Environment.lib_version()``, ``mdb_txn_id`` with ``Transaction.id()``, the environment's
path, ``mdb_dbi_flags`` with ``_Database.flags()``); a difference turns the C path off for the
process with one log line, and the loops go on through py-lmdb. Every call is made with the
GIL held and after checking, as py-lmdb does, that the transaction and database are still
valid (py-lmdb invalidates them under the GIL before it ends, closes or remaps anything).
"""

import errno
import logging

import lmdb
from cpython.object cimport PyObject
from libc.stdint cimport uintptr_t

log = logging.getLogger("pharmatrace.lmdb")

KNOWN = frozenset({"3.0.0"})
"""py-lmdb versions whose object layouts ``_pylmdb.h`` describes (checked against lmdb/cpython.c
of each one's sdist)."""

cdef object _Transaction, _Database     # py-lmdb's C types (``_types``)
cdef bint _enabled = True
cdef dict _engines = {}         # address of an engine's function table -> whether it checked
cdef bint _refused = False      # a check failed: py-lmdb for the rest of the process


def _types():
    """py-lmdb's C types (None with its cffi binding, whose objects have no such layout)."""
    try:
        from lmdb import cpython
    except ImportError:
        return None, None
    if lmdb.Transaction is not cpython.Transaction:
        return None, None
    return cpython.Transaction, getattr(cpython, "_Database", None)


_Transaction, _Database = _types()


def use(bint on):
    """Whether the compiled loops read through LMDB's C API (True) or py-lmdb's methods; the
    setting before. For tests holding the two paths to the same results."""
    global _enabled
    before = _enabled
    _enabled = on
    return before


def in_use(txn, db):
    """Whether reads of ``db`` in ``txn`` go through LMDB's C API (the self-check run if this
    is the engine's first use)."""
    cdef Reader r
    return reader(txn, db, &r) == 1


cdef bint reader(object txn, object db, Reader *r) except -1:
    """``r``: reads of ``db`` in ``txn`` through the engine py-lmdb opened them with; False
    when they must go through py-lmdb (turned off, another binding or version, a failed
    check, an ended transaction, a database of another environment, a dupsort database)."""
    cdef PT_transobj *t
    cdef PT_dbobj *d
    cdef object checked
    if not _enabled or _refused or _Transaction is None:
        return False
    if type(txn) is not _Transaction or type(db) is not _Database:
        return False
    t, d = <PT_transobj *><PyObject *>txn, <PT_dbobj *><PyObject *>db
    if not (t.valid and t.txn != NULL and t.env != NULL and t.libv != NULL and d.valid
            and d.env == t.env and not d.flags & _DUPSORT):
        return False
    checked = _engines.get(<uintptr_t>t.libv)
    if checked is None:
        checked = _engines[<uintptr_t>t.libv] = _check(txn, db)
    if not checked:
        return False
    r.trans, r.db, r.txn, r.api = t, d, t.txn, t.libv
    return _live(r)


cdef bint writer(object txn, object db, Reader *r) except -1:
    """``reader`` of a write transaction (False for a read-only one, which py-lmdb refuses)."""
    return reader(txn, db, r) and not r.trans.flags & _TRANS_RDONLY


_ERRORS = {
    -30799: "KeyExistsError", -30798: "NotFoundError", -30797: "PageNotFoundError",
    -30796: "CorruptedError", -30795: "PanicError", -30794: "VersionMismatchError",
    -30793: "InvalidError", -30792: "MapFullError", -30791: "DbsFullError",
    -30790: "ReadersFullError", -30789: "TlsFullError", -30788: "TxnFullError",
    -30787: "CursorFullError", -30786: "PageFullError", -30785: "MapResizedError",
    -30784: "IncompatibleError", -30783: "BadRslotError", -30782: "BadTxnError",
    -30781: "BadValsizeError", -30780: "BadDbiError", errno.EACCES: "ReadonlyError",
    errno.EINVAL: "InvalidParameterError", errno.EAGAIN: "LockError",
    errno.ENOMEM: "MemoryError", errno.ENOSPC: "DiskError",
}
"""py-lmdb's exception class of each LMDB error code (``error_map`` in lmdb/cpython.c); any
other code is ``lmdb.Error``."""


cdef int raise_error(const Reader *r, str what, int rc) except -1:
    """Raises what py-lmdb raises for LMDB's answer ``rc`` to ``what`` on the reader's engine
    (``UNUSABLE``: the transaction ended, as py-lmdb says of an invalid object): the same class,
    message and ``what`` / ``code`` / ``reason`` attributes, so that ``Env.write`` grows a full
    map."""
    if rc == UNUSABLE:
        raise lmdb.Error("Attempt to operate on closed/deleted/dropped object.")
    reason = (<bytes>r.api.strerror_fn(rc)).decode("utf-8", "replace")
    klass = getattr(lmdb, _ERRORS.get(rc, "Error"), lmdb.Error)
    error = klass(f"{what}: {reason}")
    error.what, error.code, error.reason = what, rc, reason
    raise error


cdef bint _check(object txn, object db) except -1:
    """Whether the layouts read right for this engine; logs why not, once."""
    global _refused
    cdef PT_transobj *t = <PT_transobj *><PyObject *>txn
    cdef PT_dbobj *d = <PT_dbobj *><PyObject *>db
    cdef const PT_api *api
    cdef int major = -1, minor = -1, patch = -1
    cdef const char *path = NULL
    cdef unsigned int flags = 0
    cdef object env, expected, said
    why = None
    if lmdb.__version__ not in KNOWN:
        why = f"py-lmdb {lmdb.__version__} is not one whose layout is known ({sorted(KNOWN)})"
    elif type(<object>t.env) is not lmdb.Environment or t.env.libv != t.libv:
        why = "a transaction's environment is not where py-lmdb 3.0.0 keeps it"
    if why is None:
        env, api = <object>t.env, t.libv
        said = tuple(env.lib_version())
        said_by_api = (api.major, api.minor, api.patch)
        version = api.version_fn(&major, &minor, &patch)
        if said_by_api != said or (major, minor, patch) != said or version == NULL:
            why = f"engine version {said_by_api} / {(major, minor, patch)}, py-lmdb says {said}"
        elif api.txn_id(t.txn) != txn.id():
            why = f"mdb_txn_id {api.txn_id(t.txn)}, py-lmdb says {txn.id()}"
        elif api.env_get_path(t.env.env, &path) != 0 or path == NULL or \
                (<bytes>path).decode("utf-8", "surrogateescape") != env.path():
            why = "the environment's path differs from py-lmdb's"
        else:
            expected = db.flags(txn)
            said_flags = (expected["reverse_key"] * 0x02 | expected["dupsort"] * 0x04
                          | expected["integerkey"] * 0x08 | expected["dupfixed"] * 0x10
                          | expected["integerdup"] * 0x20)
            if api.dbi_flags(t.txn, d.dbi, &flags) != 0 or (flags & _FLAG_BITS) != said_flags \
                    or (d.flags & _FLAG_BITS) != said_flags:
                why = f"database flags {flags:#x}, py-lmdb says {said_flags:#x}"
    if why is None:
        return True
    _refused = True
    log.warning("LMDB read through py-lmdb's methods, not its C API: %s", why)
    return False
