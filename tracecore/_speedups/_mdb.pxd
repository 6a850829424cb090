# LMDB's reads (and a flush's writes) called from the compiled loops on the transaction and
# database py-lmdb opened, through py-lmdb's own engine (``_mdb.pyx``).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE

cdef extern from "_pylmdb.h":
    ctypedef struct PT_val:
        size_t mv_size
        void *mv_data
    ctypedef struct PT_txn
    ctypedef struct PT_cursor
    ctypedef struct PT_env
    ctypedef unsigned int PT_dbi
    ctypedef struct PT_api:
        int major, minor, patch
        int (*env_get_path)(PT_env *env, const char **path) noexcept nogil
        size_t (*txn_id)(PT_txn *txn) noexcept nogil
        int (*dbi_flags)(PT_txn *txn, PT_dbi dbi, unsigned int *flags) noexcept nogil
        int (*get)(PT_txn *txn, PT_dbi dbi, PT_val *key, PT_val *data) noexcept nogil
        int (*cursor_open)(PT_txn *txn, PT_dbi dbi, PT_cursor **cursor) noexcept nogil
        void (*cursor_close)(PT_cursor *cursor) noexcept nogil
        int (*cursor_get)(PT_cursor *cursor, PT_val *key, PT_val *data, int op) noexcept nogil
        int (*cursor_put)(PT_cursor *cursor, PT_val *key, PT_val *data, unsigned int flags
                          ) noexcept nogil
        char *(*strerror_fn)(int err) noexcept nogil
        char *(*version_fn)(int *major, int *minor, int *patch) noexcept nogil
    ctypedef struct PT_envobj:
        int valid
        PT_env *env
        const PT_api *libv
    ctypedef struct PT_dbobj:
        int valid
        PT_envobj *env
        PT_dbi dbi
        unsigned int flags
    ctypedef struct PT_transobj:
        int valid
        PT_envobj *env
        const PT_api *libv
        PT_txn *txn
        int flags
        PT_dbobj *db
        int mutations
    int NOTFOUND "PT_NOTFOUND"
    int _SET "PT_SET"
    unsigned int CURRENT "PT_CURRENT"
    int _TRANS_RDONLY "PT_TRANS_RDONLY"
    unsigned int _FLAG_BITS "PT_FLAG_BITS"
    unsigned int _DUPSORT "PT_DUPSORT"

cdef enum:
    UNUSABLE = -1   # not an LMDB code: the transaction or database is no longer usable here


cdef struct Reader:
    # A read through py-lmdb's engine on one transaction's database (``reader``).
    PT_transobj *trans
    PT_dbobj *db
    PT_txn *txn     # the transaction's MDB_txn when the reader was made
    const PT_api *api


cdef bint reader(object txn, object db, Reader *r) except -1
cdef bint writer(object txn, object db, Reader *r) except -1
cdef int raise_error(const Reader *r, str what, int rc) except -1


cdef inline bint _live(const Reader *r) noexcept:
    """Whether the reader's transaction and database are as they were: py-lmdb marks them
    invalid (or drops the MDB_txn) when the transaction ends, the environment closes or the
    map is resized, each with the GIL held, as every call here is made."""
    return (r.trans.valid and r.trans.txn == r.txn and r.txn != NULL and r.db.valid
            and r.db.env == r.trans.env)


cdef inline int get(const Reader *r, object key, PT_val *data) noexcept:
    """``mdb_get`` of ``key`` (exactly bytes): 0 and ``data`` (pointing into the map, valid
    until the transaction writes or ends), ``NOTFOUND``, another LMDB error, or ``UNUSABLE``.
    Any answer but 0 and ``NOTFOUND`` is given again by py-lmdb's ``get``, which raises it."""
    cdef PT_val k
    if not PyBytes_CheckExact(key) or not _live(r):
        return UNUSABLE
    k.mv_size = <size_t>PyBytes_GET_SIZE(key)
    k.mv_data = PyBytes_AS_STRING(key)
    return r.api.get(r.txn, r.db.dbi, &k, data)


cdef inline int cursor_open(const Reader *r, PT_cursor **cursor) noexcept:
    """A cursor on the reader's database; 0, an LMDB error or ``UNUSABLE``. The caller closes
    it with ``cursor_close`` before anything can end the transaction (no Python code between)."""
    if not _live(r):
        return UNUSABLE
    return r.api.cursor_open(r.txn, r.db.dbi, cursor)


cdef inline int cursor_set(const Reader *r, PT_cursor *cursor, object key, PT_val *data
                           ) noexcept:
    """``mdb_cursor_get(MDB_SET)``: the cursor at ``key`` (next to its last place, LMDB looks
    on the page it is on before walking down the tree); answers as ``get``."""
    cdef PT_val k
    if not PyBytes_CheckExact(key) or not _live(r):
        return UNUSABLE
    k.mv_size = <size_t>PyBytes_GET_SIZE(key)
    k.mv_data = PyBytes_AS_STRING(key)
    return r.api.cursor_get(cursor, &k, data, _SET)


cdef inline int cursor_put(const Reader *r, PT_cursor *cursor, object key, PT_val *data,
                           unsigned int flags) noexcept:
    """``mdb_cursor_put`` of ``key`` (exactly bytes) on a ``writer``'s cursor (``CURRENT``:
    over the record the cursor is on); 0, an LMDB error or ``UNUSABLE``. py-lmdb is told the
    transaction changed, as its own writes do. An LMDB error leaves the transaction unusable
    (it can only be aborted): ``raise_error`` says it, nothing is asked of py-lmdb again."""
    cdef PT_val k
    if not PyBytes_CheckExact(key) or not _live(r):
        return UNUSABLE
    k.mv_size = <size_t>PyBytes_GET_SIZE(key)
    k.mv_data = PyBytes_AS_STRING(key)
    r.trans.mutations += 1
    return r.api.cursor_put(cursor, &k, data, flags)


cdef inline void let_others_run() noexcept:
    """Releases the GIL and takes it back, so that a thread waiting for it (a worker's event
    loop answering a consumer) runs between two slices of a long loop, as it did between
    py-lmdb's calls, which release it each. A waiting thread asks for the GIL once it has
    waited the switch interval (0.5 ms in a worker, ``tracerpc.runtime``), so slices longer than
    that let it in. The loop's ``Reader`` must be checked live again after (its cursor and
    records may be gone): ``_live``, as every call here does."""
    with nogil:
        pass


cdef inline void cursor_close(const Reader *r, PT_cursor *cursor) noexcept:
    """Closes a cursor of ``cursor_open`` while its transaction is live (LMDB frees a write
    transaction's cursors with it)."""
    if _live(r):
        r.api.cursor_close(cursor)
