"""The scan statistics' two per-code loops in C: a verification call's statistics of each code
(its stored totals read and added to its unflushed scans), and a flush's merge of the unflushed
scans into the stored totals.

The references are ``located_reference`` and ``merge_reference`` in
``tracecore.ledger.observations``; tests feed both the same scans and compare the answers.
Stored totals are little-endian ``<QqqII`` (count, first scan ms, last located scan ms and
region, first scan's region), or ``<QqqI`` as written before the first scan's region was kept.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from tracecore._speedups._mdb cimport (
    CURRENT,
    NOTFOUND,
    UNUSABLE,
    PT_cursor,
    PT_val,
    Reader,
    cursor_close,
    cursor_open,
    cursor_put,
    cursor_set,
    let_others_run,
    raise_error,
    reader,
    writer,
)
from tracecore._speedups._records cimport KeyPlace, key_order

cdef enum:
    _SIZE = 32
    _SIZE_WITHOUT_FIRST_REGION = 28
    # Codes a flush writes through the C API between two hand-overs of the GIL (a few ms).
    _SLICE = 4096


cdef struct Totals:
    uint64_t count
    int64_t first
    int64_t last_ms
    uint32_t last_region
    uint32_t first_region


cdef inline uint64_t _u64(const unsigned char *p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | p[i]
    return v


cdef inline uint32_t _u32(const unsigned char *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | \
        (<uint32_t>p[3] << 24)


cdef inline void _put64(unsigned char *p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = v & 0xFF
        v >>= 8


cdef inline void _put32(unsigned char *p, uint32_t v) noexcept nogil:
    cdef int i
    for i in range(4):
        p[i] = v & 0xFF
        v >>= 8


cdef int _read_stored(object stored, Totals *s) except -1:
    """``s``: the stored totals ``stored`` (a buffer of 32 or 28 bytes)."""
    cdef Py_buffer view
    PyObject_GetBuffer(stored, &view, PyBUF_SIMPLE)
    try:
        _read_totals(<const unsigned char *>view.buf, view.len, s)
    finally:
        PyBuffer_Release(&view)
    return 0


cdef int _read_totals(const unsigned char *p, Py_ssize_t size, Totals *s) except -1:
    """``s``: the stored totals at ``p`` (32 or 28 bytes)."""
    if size != _SIZE and size != _SIZE_WITHOUT_FIRST_REGION:
        raise ValueError(f"stored scan statistics of {size} bytes")
    s.count = _u64(p)
    s.first = <int64_t>_u64(p + 8)
    s.last_ms = <int64_t>_u64(p + 16)
    s.last_region = _u32(p + 24)
    s.first_region = _u32(p + 28) if size == _SIZE else 0
    return 0


cdef inline void _plus_stored(Totals *t, const Totals *s) noexcept nogil:
    """``t`` (scans not yet stored) plus the stored totals ``s`` of the same code."""
    if s.first <= t.first:
        t.first, t.first_region = s.first, s.first_region
    if s.last_ms > t.last_ms:
        t.last_ms, t.last_region = s.last_ms, s.last_region
    t.count += s.count


cdef inline void _set(list column, Py_ssize_t i, object value):
    Py_INCREF(value)
    PyList_SET_ITEM(column, i, value)


cdef inline bint _same_key(object a, object b) noexcept:
    """Whether two keys (bytes) are equal."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(a)
    return size == PyBytes_GET_SIZE(b) and memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b),
                                                  size) == 0


def located(list keys, list earlier, bint repeated, object index, object flushing,
            object txn, object db, int64_t now_ms, uint32_t region):
    """``located_reference`` in C. The stored totals are read first, in key order through
    one cursor (LMDB then finds a key next to the last one without walking down the tree
    again), and kept per key until the keys' statistics are worked out in call order."""
    cdef Py_ssize_t n = len(keys)
    cdef Totals *found
    cdef char *has
    if len(earlier) != n:
        raise ValueError("earlier must have one entry per key")
    found = <Totals *>malloc((n if n else 1) * sizeof(Totals))
    has = <char *>malloc(n if n else 1)
    if found is NULL or has is NULL:
        free(found)
        free(has)
        raise MemoryError()
    try:
        _read_in_key_order(keys, txn, db, found, has)
        return _located(keys, earlier, repeated, index, flushing, now_ms, region, found, has)
    finally:
        free(found)
        free(has)


cdef int _read_in_key_order(list keys, object txn, object db, Totals *found, char *has
                            ) except -1:
    """``found[i]``, ``has[i]``: the stored totals of ``keys[i]``, whether there are any."""
    cdef Py_ssize_t n = len(keys), j, at, prev = 0
    cdef KeyPlace *order
    cdef object key, cursor = None, set_key = None, value = None
    # Through LMDB's C API where ``_mdb`` allows it: no Python code runs between the cursor's
    # opening and its closing, so the transaction cannot end in between.
    cdef Reader r
    cdef PT_cursor *c_cursor = NULL
    cdef PT_val stored
    cdef int rc = UNUSABLE
    if n == 0:
        return 0
    if reader(txn, db, &r) and cursor_open(&r, &c_cursor) != 0:
        c_cursor = NULL
    order = key_order(keys)
    try:
        for j in range(n):
            at = order[j].index
            key = <object>PyList_GET_ITEM(keys, at)
            # Keys whose first bytes differ differ (the key objects are not touched again).
            if j and order[j].word == order[j - 1].word and _same_key(
                    key, <object>PyList_GET_ITEM(keys, prev)):
                has[at] = has[prev]
                found[at] = found[prev]
            else:
                if c_cursor is not NULL:
                    rc = cursor_set(&r, c_cursor, key, &stored)
                if rc == 0 or rc == NOTFOUND:
                    has[at] = rc == 0
                    if has[at]:
                        _read_totals(<const unsigned char *>stored.mv_data,
                                     <Py_ssize_t>stored.mv_size, &found[at])
                else:
                    # py-lmdb's cursor, where the C API is not allowed or answered an error
                    # (which py-lmdb then raises).
                    if cursor is None:
                        cursor = txn.cursor(db=db)
                        set_key, value = cursor.set_key, cursor.value
                    has[at] = bool(set_key(key))
                    if has[at]:
                        _read_stored(value(), &found[at])
            prev = at
    finally:
        free(order)
        if c_cursor is not NULL:
            cursor_close(&r, c_cursor)
    return 0


cdef tuple _located(list keys, list earlier, bint repeated, object index, object flushing,
                    int64_t now_ms, uint32_t region, const Totals *found, const char *has):
    cdef Py_ssize_t n = len(keys), i
    cdef list counts = PyList_New(n), firsts_ms = PyList_New(n), lasts_ms = PyList_New(n)
    cdef list last_regions = PyList_New(n), first_regions = PyList_New(n)
    cdef dict here = {}
    cdef object firsts = None, lasts = None, writing_counts = None
    cdef object key, writing, seen
    cdef Totals t
    cdef long before, m
    if flushing is not None and flushing:
        writing_counts = flushing.counts
    for i in range(n):
        key = keys[i]
        before = earlier[i]
        if before or repeated:
            if firsts is None:
                firsts, lasts = index()
            t.count = before
            seen = firsts.get(key)
            if seen is None:
                t.first, t.first_region = now_ms, region
            else:
                t.first, t.first_region = seen
            seen = lasts.get(key)
            if seen is None:
                t.last_ms, t.last_region = 0, 0
            else:
                t.last_ms, t.last_region = seen
            if repeated:
                # The same code twice in one call: each scan counts the ones before it.
                seen = here.get(key)
                m = 0 if seen is None else seen
                here[key] = m + 1
                if m:
                    t.count += m
                    if region:
                        t.last_ms, t.last_region = now_ms, region
            t.count += 1
        else:
            t.count, t.first, t.last_ms, t.last_region, t.first_region = 1, now_ms, 0, 0, region
        # Of scans in the same millisecond, the stored ones came first, then the ones being
        # flushed, then this worker's log.
        if writing_counts is not None and PyDict_GetItem(writing_counts, key) is not NULL:
            writing = flushing.get(key)
            if writing is not None:
                t.count += writing.count
                if writing.first_ms <= t.first:
                    t.first, t.first_region = writing.first_ms, writing.first_region
                if writing.last_ms > t.last_ms:
                    t.last_ms, t.last_region = writing.last_ms, writing.last_region
        if has[i]:
            _plus_stored(&t, &found[i])
        _set(counts, i, t.count)
        _set(firsts_ms, i, t.first)
        _set(lasts_ms, i, t.last_ms)
        _set(last_regions, i, t.last_region)
        _set(first_regions, i, t.first_region)
    return counts, firsts_ms, lasts_ms, last_regions, first_regions


cdef inline void _pack(const Totals *t, unsigned char *p) noexcept nogil:
    """``t`` as stored (``<QqqII``) into the ``_SIZE`` bytes at ``p``."""
    _put64(p, t.count)
    _put64(p + 8, <uint64_t>t.first)
    _put64(p + 16, <uint64_t>t.last_ms)
    _put32(p + 24, t.last_region)
    _put32(p + 28, t.first_region)


cdef bytes _packed(const Totals *t):
    """``t`` as stored, as bytes."""
    cdef bytes packed = PyBytes_FromStringAndSize(NULL, _SIZE)
    _pack(t, <unsigned char *>PyBytes_AS_STRING(packed))
    return packed


def merge(object log, object txn, object db):
    """``merge_reference`` in C: the log's scans sorted by key (a stable sort, so each key's
    scans stay in the order they came), so each key's count, first scan and last located scan
    are a run of the sorted array, with no per-key dictionary; each key's totals written at its
    turn through one cursor (LMDB's, through its C API, where ``_mdb.writer`` allows it)."""
    cdef list entries = log.entries
    cdef Py_ssize_t n_entries = len(entries), total, e, k, i, j, n_keys, run_end, at
    cdef Py_ssize_t written = 0
    cdef object entry, key
    cdef list keys = []             # every scan's key, in the log's order
    cdef Py_ssize_t *entry_of = NULL
    cdef KeyPlace *order = NULL
    cdef int64_t *ms = NULL
    cdef uint32_t *regions = NULL
    cdef Totals t
    cdef Totals s
    cdef object cursor, put, replace, stored
    cdef Reader r
    cdef PT_cursor *c_cursor = NULL
    cdef PT_val stored_val, value
    cdef unsigned char packed[_SIZE]
    cdef int rc
    for e in range(n_entries):
        keys.extend((<object>entries[e]).keys)
    total = len(keys)
    if total == 0:
        return 0
    entry_of = <Py_ssize_t *>malloc(total * sizeof(Py_ssize_t))
    ms = <int64_t *>malloc(n_entries * sizeof(int64_t))
    regions = <uint32_t *>malloc(n_entries * sizeof(uint32_t))
    try:
        if entry_of is NULL or ms is NULL or regions is NULL:
            raise MemoryError()
        i = 0
        for e in range(n_entries):
            entry = entries[e]
            ms[e] = entry.ms
            regions[e] = entry.region
            n_keys = len(entry.keys)
            for k in range(n_keys):
                entry_of[i] = e
                i += 1
        order = key_order(keys)
        # In key order through one cursor: LMDB finds each key next to the last one. Through
        # LMDB's C API where ``_mdb`` allows it (no Python code runs while the cursor is open).
        if writer(txn, db, &r) and cursor_open(&r, &c_cursor) != 0:
            c_cursor = NULL
        if c_cursor is NULL:
            cursor = txn.cursor(db=db)
            put, replace = cursor.put, cursor.replace
        i = 0
        while i < total:
            key = <object>PyList_GET_ITEM(keys, order[i].index)
            run_end = i + 1
            while run_end < total and order[run_end].word == order[i].word and _same_key(
                    <object>PyList_GET_ITEM(keys, order[run_end].index), key):
                run_end += 1
            t.count = run_end - i
            at = entry_of[order[i].index]
            t.first, t.first_region = ms[at], regions[at]
            t.last_ms, t.last_region = 0, 0
            j = run_end - 1
            while j >= i:
                at = entry_of[order[j].index]
                if regions[at]:
                    t.last_ms, t.last_region = ms[at], regions[at]
                    break
                j -= 1
            if c_cursor is not NULL:
                # Totals stored before are added to and written over in place.
                rc = cursor_set(&r, c_cursor, key, &stored_val)
                if rc == 0:
                    _read_totals(<const unsigned char *>stored_val.mv_data,
                                 <Py_ssize_t>stored_val.mv_size, &s)
                    _plus_stored(&t, &s)
                if rc == 0 or rc == NOTFOUND:
                    _pack(&t, packed)
                    value.mv_size, value.mv_data = _SIZE, packed
                    rc = cursor_put(&r, c_cursor, key, &value, CURRENT if rc == 0 else 0)
                if rc != 0:
                    raise_error(&r, "mdb_cursor_put", rc)
                if written % _SLICE == _SLICE - 1:
                    let_others_run()
            else:
                # Written at once; totals stored before come back, and their sum is written
                # over.
                stored = replace(key, _packed(&t))
                if stored is not None:
                    _read_stored(stored, &s)
                    _plus_stored(&t, &s)
                    put(key, _packed(&t))
            written += 1
            i = run_end
    finally:
        if c_cursor is not NULL:
            cursor_close(&r, c_cursor)
        free(order)
        free(entry_of)
        free(ms)
        free(regions)
    return written


# -- BLAKE2b (RFC 7693) under one key, the key block compressed once ---------------------------

cdef enum:
    _BLOCK = 128
    _MAX_KEY = 64
    _MAX_DIGEST = 64

cdef uint64_t _IV[8]
_IV[:] = [0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
          0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179]

# The message schedule of each round; rounds 10 and 11 take rows 0 and 1 again.
cdef unsigned char _SIGMA[10][16]
_SIGMA[:] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
]


cdef inline uint64_t _rotr(uint64_t x, int n) noexcept nogil:
    return (x >> n) | (x << (64 - n))


cdef inline void _g(uint64_t *v, int a, int b, int c, int d, uint64_t x, uint64_t y
                    ) noexcept nogil:
    v[a] = v[a] + v[b] + x
    v[d] = _rotr(v[d] ^ v[a], 32)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], 24)
    v[a] = v[a] + v[b] + y
    v[d] = _rotr(v[d] ^ v[a], 16)
    v[c] = v[c] + v[d]
    v[b] = _rotr(v[b] ^ v[c], 63)


cdef void _compress(uint64_t *h, const unsigned char *block, uint64_t t, bint last
                    ) noexcept nogil:
    cdef uint64_t m[16]
    cdef uint64_t v[16]
    cdef int i
    cdef const unsigned char *s
    for i in range(16):
        m[i] = _u64(block + 8 * i)
    for i in range(8):
        v[i] = h[i]
        v[i + 8] = _IV[i]
    v[12] ^= t          # the byte counter's high word stays 0: no input reaches 2**64 bytes
    if last:
        v[14] = ~v[14]
    for i in range(12):
        s = _SIGMA[i % 10]
        _g(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _g(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _g(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _g(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


cdef class KeyedBlake2b:
    """BLAKE2b of ``digest_size`` bytes under ``key`` (as ``hashlib.blake2b(data, key=key,
    digest_size=digest_size)``), with the key's block compressed once for every message."""

    cdef uint64_t _keyed[8]     # the state after the key's block
    cdef uint64_t _empty[8]     # the digest state of the empty message
    cdef int _size

    def __init__(self, bytes key, int digest_size):
        cdef unsigned char block[_BLOCK]
        cdef Py_ssize_t n = len(key)
        cdef int i
        if not 0 < n <= _MAX_KEY or not 0 < digest_size <= _MAX_DIGEST:
            raise ValueError("a key of 1 to 64 bytes and a digest of 1 to 64 bytes")
        self._size = digest_size
        memset(block, 0, _BLOCK)
        memcpy(block, PyBytes_AS_STRING(key), n)
        for i in range(8):
            self._keyed[i] = _IV[i]
        self._keyed[0] ^= 0x01010000 ^ (<uint64_t>n << 8) ^ <uint64_t>digest_size
        memcpy(self._empty, self._keyed, sizeof(self._keyed))
        _compress(self._keyed, block, _BLOCK, False)
        _compress(self._empty, block, _BLOCK, True)
        memset(block, 0, _BLOCK)

    def __repr__(self):
        return "KeyedBlake2b(<key>)"

    def __reduce__(self):
        raise TypeError("a KeyedBlake2b is not pickled: it holds a key")

    def digests(self, keys):
        """The digest of each of ``keys`` (bytes), in order."""
        cdef list out = []
        cdef object item
        for item in keys:
            out.append(self._digest(item))
        return out

    cdef bytes _digest(self, object data):
        cdef uint64_t h[8]
        cdef unsigned char block[_BLOCK]
        cdef unsigned char full[_MAX_DIGEST]
        cdef const unsigned char *p
        cdef Py_ssize_t n, left
        cdef uint64_t t = _BLOCK
        cdef int i
        if not PyBytes_Check(data):
            raise TypeError("BLAKE2b digests bytes")
        p = <const unsigned char *>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        if n == 0:
            memcpy(h, self._empty, sizeof(h))
        else:
            memcpy(h, self._keyed, sizeof(h))
            left = n
            while left > _BLOCK:
                t += _BLOCK
                _compress(h, p, t, False)
                p += _BLOCK
                left -= _BLOCK
            memset(block, 0, _BLOCK)
            memcpy(block, p, left)
            t += <uint64_t>left
            _compress(h, block, t, True)
        for i in range(8):
            _put64(full + 8 * i, h[i])
        return PyBytes_FromStringAndSize(<char *>full, self._size)
