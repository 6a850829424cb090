"""Code records read and written in C: a write transaction's changed records packed into their
52-byte layout and put in the order of the keys LMDB holds for them, in one pass; the records
an event reads made from their bytes.

The references are ``packed_in_key_order_reference`` and ``unpack_many_reference`` in
``tracecore.ledger.records``; tests feed both the same records and compare the answers. The layout is ``records._CODE``
(``<BBBxHxxIIIIIqqQ``: status, level, flags, key id, product, batch, pool, holder, region,
issued, updated, last event) from a ``CodeRecord``'s fields (status, level, key id, product,
batch, pool, holder, region, issued, updated, last event, flags).
"""

import struct

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort
from libc.string cimport memcmp, memset

cdef enum:
    _SIZE = 52
    _FIELDS = 12
    # Tags' top bits dealt into buckets (``_bucketed``), and a bucket small enough to sort by
    # insertion.
    _BUCKETS = 65536
    _SMALL = 16


cdef struct _Key:
    # The 8 bytes after the prefix every key shares, big-endian (zeros past a key's end): keys
    # under one product share their first bytes, and their order is nearly always decided here
    # by one comparison of integers instead of a memcmp over the shared part.
    uint64_t tag
    const char* data
    Py_ssize_t size
    Py_ssize_t index


cdef int _by_key(const void* a, const void* b) noexcept nogil:
    # bytes order (the tag, then memcmp, then the shorter first), then the order given: a
    # stable sort's. Equal tags leave the order to memcmp; different tags decide it as memcmp
    # would, since the keys agree on every byte before the tag's.
    cdef const _Key* x = <const _Key*>a
    cdef const _Key* y = <const _Key*>b
    if x.tag != y.tag:
        return -1 if x.tag < y.tag else 1
    cdef Py_ssize_t n = x.size if x.size < y.size else y.size
    cdef int c = memcmp(x.data, y.data, n)
    if c:
        return c
    if x.size != y.size:
        return -1 if x.size < y.size else 1
    return -1 if x.index < y.index else (1 if x.index > y.index else 0)


cdef _Key* _ordered(list keys) except NULL:
    """``keys`` (bytes) sorted as ``_by_key`` orders them; the caller frees the array."""
    cdef Py_ssize_t n = len(keys), i, j, shared = 0, size
    cdef object key
    cdef const char* data
    cdef const char* first = NULL
    cdef uint64_t tag
    cdef _Key* order = <_Key*>malloc(max(n, 1) * sizeof(_Key))
    if order == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            key = keys[i]
            if not PyBytes_Check(key):
                raise TypeError("keys are bytes")
            data = PyBytes_AS_STRING(key)
            size = PyBytes_GET_SIZE(key)
            order[i].data = data
            order[i].size = size
            order[i].index = i
            if i == 0:
                first = data
                shared = size
            else:
                if size < shared:
                    shared = size
                j = 0
                while j < shared and data[j] == first[j]:
                    j += 1
                shared = j
        for i in range(n):
            tag = 0
            for j in range(shared, shared + 8):
                tag = (tag << 8) | (<unsigned char>order[i].data[j] if j < order[i].size else 0)
            order[i].tag = tag
    except BaseException:
        free(order)
        raise
    cdef _Key* by_bucket = _bucketed(order, n) if n > _SMALL else NULL
    if by_bucket == NULL:
        qsort(order, n, sizeof(_Key), _by_key)
        return order
    free(order)
    return by_bucket


cdef _Key* _bucketed(const _Key* keys, Py_ssize_t n) noexcept nogil:
    """``keys`` sorted as ``_by_key`` orders them, into a new array: dealt into buckets by the
    top 16 bits of their tags (in the order given), each bucket then sorted on its own. Stored
    keys end in ciphertext, so their tags are spread evenly and buckets hold a few keys each; a
    bucket of many (keys alike in those bits) is sorted by qsort, never worse than n log n.
    NULL when memory is short (the caller sorts in place)."""
    cdef Py_ssize_t* ends = <Py_ssize_t*>calloc(_BUCKETS + 1, sizeof(Py_ssize_t))
    cdef _Key* out = <_Key*>malloc(n * sizeof(_Key))
    cdef Py_ssize_t i, b, begin, size, j
    cdef _Key moving
    if ends == NULL or out == NULL:
        free(ends)
        free(out)
        return NULL
    for i in range(n):
        ends[(keys[i].tag >> 48) + 1] += 1
    for b in range(_BUCKETS):
        ends[b + 1] += ends[b]
    # ends[b] is now where bucket b begins; dealing a key moves it on, to where it ends.
    for i in range(n):
        b = keys[i].tag >> 48
        out[ends[b]] = keys[i]
        ends[b] += 1
    begin = 0
    for b in range(_BUCKETS):
        size = ends[b] - begin
        if size > _SMALL:
            qsort(out + begin, size, sizeof(_Key), _by_key)
        elif size > 1:
            for i in range(begin + 1, ends[b]):
                moving = out[i]
                j = i
                while j > begin and _by_key(&out[j - 1], &moving) > 0:
                    out[j] = out[j - 1]
                    j -= 1
                out[j] = moving
        begin = ends[b]
    free(ends)
    return out


def in_key_order(list keys, list values):
    """(``keys`` in bytes order, ``values`` in the same order): a stable sort of the pairs by
    their keys."""
    cdef Py_ssize_t n = len(keys), i
    if len(values) != n:
        raise ValueError("as many values as keys")
    cdef _Key* order = _ordered(keys)
    cdef list sorted_keys = [None] * n
    cdef list sorted_values = [None] * n
    try:
        for i in range(n):
            sorted_keys[i] = keys[order[i].index]
            sorted_values[i] = values[order[i].index]
    finally:
        free(order)
    return sorted_keys, sorted_values


cdef extern from "Python.h":
    # Declared without Cython's error check: the callers below test for the error themselves,
    # without a try block's cost per field.
    unsigned long long _as_unsigned "PyLong_AsUnsignedLongLong"(object value)
    long long _as_signed "PyLong_AsLongLong"(object value)
    PyObject* PyErr_Occurred()
    void PyErr_Clear()


cdef uint64_t _unsigned(object value, uint64_t largest) except? 0xFFFFFFFFFFFFFFFF:
    if not PyLong_Check(value):
        raise struct.error("required argument is not an integer")
    # Converted and bounded in C: comparing Python integers costs more than packing.
    cdef uint64_t got = _as_unsigned(value)
    if got == <uint64_t>-1 and PyErr_Occurred() != NULL:
        PyErr_Clear()  # OverflowError: negative, or beyond 64 bits
        raise struct.error(f"argument out of range: {value}")
    if got > largest:
        raise struct.error(f"argument out of range: {value}")
    return got


cdef int64_t _signed(object value) except? -1:
    if not PyLong_Check(value):
        raise struct.error("required argument is not an integer")
    cdef int64_t got = _as_signed(value)
    if got == -1 and PyErr_Occurred() != NULL:
        PyErr_Clear()
        raise struct.error(f"argument out of range: {value}")
    return got


cdef inline void _put(char* at, uint64_t value, int width) noexcept:
    cdef int i
    for i in range(width):
        at[i] = <char>((value >> (8 * i)) & 0xFF)


cdef bytes _pack(object record):
    if not PyTuple_Check(record) or PyTuple_GET_SIZE(record) != _FIELDS:
        raise TypeError("a code record has 12 fields")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, _SIZE)
    cdef char* p = PyBytes_AS_STRING(out)
    memset(p, 0, _SIZE)
    _put(p, _unsigned(<object>PyTuple_GET_ITEM(record, 0), 0xFF), 1)        # status
    _put(p + 1, _unsigned(<object>PyTuple_GET_ITEM(record, 1), 0xFF), 1)    # level
    _put(p + 2, _unsigned(<object>PyTuple_GET_ITEM(record, 11), 0xFF), 1)   # flags
    _put(p + 4, _unsigned(<object>PyTuple_GET_ITEM(record, 2), 0xFFFF), 2)  # key id
    cdef int i
    for i in range(5):                                        # product, batch, pool, holder, region
        _put(p + 8 + 4 * i, _unsigned(<object>PyTuple_GET_ITEM(record, 3 + i), 0xFFFFFFFF), 4)
    _put(p + 28, <uint64_t>_signed(<object>PyTuple_GET_ITEM(record, 8)), 8)  # issued
    _put(p + 36, <uint64_t>_signed(<object>PyTuple_GET_ITEM(record, 9)), 8)  # updated
    _put(p + 44, _unsigned(<object>PyTuple_GET_ITEM(record, 10), 0xFFFFFFFFFFFFFFFF), 8)
    return out


def packed_in_key_order(list keys, list records):
    """[(key, record packed)] of each key and its record, in the keys' (bytes) order."""
    cdef Py_ssize_t n = len(keys), i
    if len(records) != n:
        raise ValueError("as many records as keys")
    for key in keys:
        if not PyBytes_Check(key):
            raise TypeError("keys are bytes")
    # Packed before sorting: a record that does not pack fails as the reference fails.
    cdef list packed = [_pack(r) for r in records]
    cdef _Key* order = _ordered(keys)
    cdef list out
    try:
        out = [(keys[order[i].index], packed[order[i].index]) for i in range(n)]
    finally:
        free(order)
    return out


cdef extern from "Python.h":
    PyObject* PyType_GenericAlloc(object subtype, Py_ssize_t items) except NULL
    void PyTuple_SET_ITEM(object tuple, Py_ssize_t at, object item)
    void Py_INCREF(object o)
    void Py_DECREF(PyObject* o)


cdef inline uint64_t _get(const unsigned char* at, int width) noexcept:
    cdef uint64_t value = 0
    cdef int i
    for i in range(width):
        value |= (<uint64_t>at[i]) << (8 * i)
    return value


cdef inline void _set(object record, Py_ssize_t at, object value):
    Py_INCREF(value)
    PyTuple_SET_ITEM(record, at, value)


def unpacked(list data, type cls, dict status_of):
    """``cls`` (a 12-field tuple type: ``CodeRecord``) of each stored 52-byte record, its status
    looked up in ``status_of``; struct.error for a record of another size."""
    cdef Py_ssize_t n = len(data), i, j
    cdef list out = [None] * n
    cdef const unsigned char[:] view
    cdef const unsigned char* p
    cdef PyObject* raw
    cdef object record
    cdef object item
    cdef Py_ssize_t size
    for i in range(n):
        item = data[i]
        if PyBytes_Check(item):
            p = <const unsigned char*>PyBytes_AS_STRING(item)
            size = PyBytes_GET_SIZE(item)
        else:
            view = item
            size = view.shape[0]
            p = &view[0] if size else NULL
        if size != _SIZE:
            raise struct.error(f"a code record is {_SIZE} bytes, not {size}")
        status = status_of[p[0]]
        raw = PyType_GenericAlloc(cls, _FIELDS)
        record = <object>raw
        Py_DECREF(raw)
        _set(record, 0, status)
        _set(record, 1, p[1])
        _set(record, 2, <unsigned int>_get(p + 4, 2))
        for j in range(5):
            _set(record, 3 + j, <unsigned int>_get(p + 8 + 4 * j, 4))
        _set(record, 8, <int64_t>_get(p + 28, 8))
        _set(record, 9, <int64_t>_get(p + 36, 8))
        _set(record, 10, _get(p + 44, 8))
        _set(record, 11, p[2])
        out[i] = record
    return out


def with_custody(list records, type cls, object holder, object region, long set_flags,
                 long clear_flags):
    """``cls`` (``CodeRecord``) of each record held by ``holder``, in ``region`` (None: its
    own), its flags with ``set_flags`` set and ``clear_flags`` cleared; every other field the
    same object as before."""
    cdef Py_ssize_t n = len(records), i, j
    cdef list out = [None] * n
    cdef object record, changed, flags
    cdef PyObject* raw
    cdef long was, now
    for i in range(n):
        record = records[i]
        if not PyTuple_Check(record) or PyTuple_GET_SIZE(record) != _FIELDS:
            raise ValueError("a code record has 12 fields")
        flags = <object>PyTuple_GET_ITEM(record, 11)
        if type(flags) is int:
            was = flags
            now = (was | set_flags) & ~clear_flags
            if now != was:
                flags = now
        else:
            flags = (flags | set_flags) & ~clear_flags
        raw = PyType_GenericAlloc(cls, _FIELDS)
        changed = <object>raw
        Py_DECREF(raw)
        for j in range(6):
            _set(changed, j, <object>PyTuple_GET_ITEM(record, j))
        _set(changed, 6, holder)
        _set(changed, 7, <object>PyTuple_GET_ITEM(record, 7) if region is None else region)
        for j in range(8, 11):
            _set(changed, j, <object>PyTuple_GET_ITEM(record, j))
        _set(changed, 11, flags)
        out[i] = changed
    return out
