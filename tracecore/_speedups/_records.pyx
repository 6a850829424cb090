"""Code records read and written in C: a write transaction's changed records packed into their
52-byte layout and put in the order of the keys LMDB holds for them, in one pass; the records
an event reads made from their bytes; ledger keys (with values, or alone) put in that order,
by the one key sort of the compiled loops (``key_order``, which the scan statistics'
``_scans`` cimports through ``_records.pxd``).

The references are ``packed_in_key_order_reference`` and ``unpack_many_reference`` in
``tracecore.ledger.records``; tests feed both the same records and compare the answers. The layout is ``records._CODE``
(``<BBBxHxxIIIIIqqQ``: status, level, flags, key id, product, batch, pool, holder, region,
issued, updated, last event) from a ``CodeRecord``'s fields (status, level, key id, product,
batch, pool, holder, region, issued, updated, last event, flags).
"""

import struct

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

cdef enum:
    _SIZE = 52
    _FIELDS = 12


cdef int _compare(list keys, KeyPlace a, KeyPlace b):
    """Bytes order of two keys (memcmp, then the shorter first), then their order given."""
    cdef bytes x = <bytes>PyList_GET_ITEM(keys, a.index)
    cdef bytes y = <bytes>PyList_GET_ITEM(keys, b.index)
    cdef Py_ssize_t nx = PyBytes_GET_SIZE(x), ny = PyBytes_GET_SIZE(y)
    cdef int c = memcmp(PyBytes_AS_STRING(x), PyBytes_AS_STRING(y), nx if nx < ny else ny)
    if c:
        return c
    if nx != ny:
        return -1 if nx < ny else 1
    return -1 if a.index < b.index else (1 if a.index > b.index else 0)


cdef KeyPlace* key_order(list keys) except NULL:
    """The places of ``keys`` (bytes) in bytes order, equal keys in their order given; the
    caller frees the array (``free``). Ledger keys share a prefix (a product's, in clear) and the 8 bytes
    after it almost always decide, so the keys are sorted by those (a radix sort, stable, a
    pass a byte, skipping a byte every key has alike), and only runs alike there are ordered by
    their remaining bytes (such runs are rare and short unless keys are short or repeated)."""
    cdef Py_ssize_t n = len(keys), i, j, prefix = 0, length, start, total, count
    cdef const unsigned char* first = NULL
    cdef const unsigned char* data
    cdef object item
    cdef uint64_t word
    cdef Py_ssize_t counts[256]
    cdef int shift
    cdef KeyPlace moving
    cdef list run
    for i in range(n):
        if type(<object>PyList_GET_ITEM(keys, i)) is not bytes:
            raise TypeError("keys are bytes")
    cdef KeyPlace* entries = <KeyPlace*>malloc(2 * max(n, 1) * sizeof(KeyPlace))
    if entries == NULL:
        raise MemoryError()
    cdef KeyPlace* base = entries
    cdef KeyPlace* spare = entries + n
    cdef KeyPlace* swap
    for i in range(n):
        item = <object>PyList_GET_ITEM(keys, i)
        data = <const unsigned char*>PyBytes_AS_STRING(item)
        length = PyBytes_GET_SIZE(item)
        if i == 0:
            first, prefix = data, length
        else:
            if length < prefix:
                prefix = length
            j = 0
            while j < prefix and data[j] == first[j]:
                j += 1
            prefix = j
    for i in range(n):
        item = <object>PyList_GET_ITEM(keys, i)
        data = <const unsigned char*>PyBytes_AS_STRING(item)
        length = PyBytes_GET_SIZE(item)
        word = 0
        for j in range(prefix, prefix + 8):
            word = (word << 8) | (data[j] if j < length else 0)
        entries[i].word = word
        entries[i].index = i
    with nogil:
        for shift in range(0, 64, 8):
            memset(counts, 0, sizeof(counts))
            for i in range(n):
                counts[(entries[i].word >> shift) & 0xFF] += 1
            if n == 0 or counts[(entries[0].word >> shift) & 0xFF] == n:
                continue
            total = 0
            for i in range(256):
                count = counts[i]
                counts[i] = total
                total += count
            for i in range(n):
                j = (entries[i].word >> shift) & 0xFF
                spare[counts[j]] = entries[i]
                counts[j] += 1
            swap = entries
            entries = spare
            spare = swap
    if entries != base:
        memcpy(base, entries, n * sizeof(KeyPlace))
    entries = base
    start = 0
    while start < n:
        i = start + 1
        while i < n and entries[i].word == entries[start].word:
            i += 1
        if i - start > 16:
            run = sorted([(<object>PyList_GET_ITEM(keys, entries[j].index), entries[j].index)
                          for j in range(start, i)])
            for j in range(start, i):
                entries[j].index = run[j - start][1]
            start = i
            continue
        for j in range(start + 1, i):
            moving = entries[j]
            total = j
            while total > start and _compare(keys, entries[total - 1], moving) > 0:
                entries[total] = entries[total - 1]
                total -= 1
            entries[total] = moving
        start = i
    return entries


def sorted_keys(list keys):
    """``sorted(keys)`` for a list of ``bytes``: a new list, in bytes order, equal keys in
    their order in ``keys``."""
    cdef Py_ssize_t n = len(keys), i
    cdef KeyPlace* order = key_order(keys)
    cdef list out = [None] * n
    try:
        for i in range(n):
            out[i] = keys[order[i].index]
    finally:
        free(order)
    return out


def in_key_order(list keys, list values):
    """(``keys`` in bytes order, ``values`` in the same order): a stable sort of the pairs by
    their keys."""
    cdef Py_ssize_t n = len(keys), i
    if len(values) != n:
        raise ValueError("as many values as keys")
    cdef KeyPlace* order = key_order(keys)
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
    cdef KeyPlace* order = key_order(keys)
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
