"""Protobuf wire format in C: packed repeated integer fields written straight from lists of
Python ints, single integer and string fields, between pieces a message's own
``SerializeToString`` wrote.

A message's encoding is its fields' encodings one after another, so a message is written as
pieces in field-number order: a packed column as tag, length and varints, every other field
by protobuf itself. The reference is protobuf's encoder: a message built from the same lists
serializes to the same bytes (tests compare them).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8String
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object, int *) except? -1
    bint PyBool_Check(object)

INT32 = 0
UINT32 = 1
INT64 = 2
UINT64 = 3
"""A column's protobuf type (an enum is written as an int32)."""
STRING = 4
"""A string field's."""

cdef enum:
    _INT32 = 0
    _UINT32 = 1
    _INT64 = 2
    _UINT64 = 3
    _STRING = 4
    _VARINT = 0
    _LENGTH_DELIMITED = 2
    _MAX_VARINT = 10


cdef inline Py_ssize_t _varint_size(uint64_t v) noexcept nogil:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline char *_put_varint(char *p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <char>((v & 0x7F) | 0x80)
        v >>= 7
        p += 1
    p[0] = <char>v
    return p + 1


cdef uint64_t _huge(object item, int kind) except? 0:
    """An int beyond int64: a uint64 up to 2**64 - 1; anything else ValueError."""
    if kind == _UINT64 and 0 < item <= 0xFFFFFFFFFFFFFFFF:
        return <uint64_t>item
    raise _out_of_range(item)


cdef object _out_of_range(object item):
    return ValueError(f"Value out of range: {item!r}")


cdef char *_put_int(char *p, object item, int kind) except NULL:
    """The varint of ``item`` at ``p`` (at most ten bytes); where it ends. A negative int32 or
    int64 is sign-extended to ten bytes, as protobuf writes it; a value out of its type's range
    is a ValueError and a bool a TypeError, as in protobuf."""
    cdef int overflow
    cdef int64_t v
    if PyBool_Check(item):
        raise TypeError(f"expected an int, got a boolean: {item!r}")
    v = PyLong_AsLongLongAndOverflow(item, &overflow)
    if overflow:
        return _put_varint(p, _huge(item, kind))
    if kind == _INT32:
        if v < -0x80000000 or v > 0x7FFFFFFF:
            raise _out_of_range(item)
    elif kind == _UINT32:
        if v < 0 or v > 0xFFFFFFFF:
            raise _out_of_range(item)
    elif kind == _UINT64:
        if v < 0:
            raise _out_of_range(item)
    return _put_varint(p, <uint64_t>v)


cdef char *_put_column(char *p, list values, int kind) except NULL:
    """The varints of ``values`` from ``p`` (``_put_int`` each); where they end."""
    cdef Py_ssize_t i
    for i in range(PyList_GET_SIZE(values)):
        p = _put_int(p, <object>PyList_GET_ITEM(values, i), kind)
    return p


cdef bytes _single_field(Py_ssize_t number, int kind, object value):
    """One integer or string field's tag and value; empty for 0 or "", which protobuf leaves
    out of a message."""
    cdef char buffer[2 * _MAX_VARINT]
    cdef char *p
    cdef bytes text
    cdef Py_ssize_t size
    if kind == _STRING:
        if not isinstance(value, str):
            raise TypeError(f"expected a str, got {type(value).__name__}: {value!r}")
        if not value:
            return b""
        text = PyUnicode_AsUTF8String(value)
        size = PyBytes_GET_SIZE(text)
        p = _put_varint(buffer, (<uint64_t>number << 3) | _LENGTH_DELIMITED)
        p = _put_varint(p, <uint64_t>size)
        return PyBytes_FromStringAndSize(buffer, p - buffer) + text
    if not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}: {value!r}")
    p = _put_int(buffer + _MAX_VARINT, value, kind)
    if value == 0:
        return b""
    size = p - (buffer + _MAX_VARINT)
    p = _put_varint(buffer, (<uint64_t>number << 3) | _VARINT)
    memcpy(p, buffer + _MAX_VARINT, size)
    return PyBytes_FromStringAndSize(buffer, (p - buffer) + size)


def message(pieces: list) -> bytes:
    """The bytes of ``pieces`` one after another: a ``bytes`` piece as it is, a
    ``(field number, kind, list of ints)`` piece as that packed repeated field, a
    ``(field number, kind, int)`` piece as that integer field and a ``(field number, STRING,
    str)`` piece as that string field (nothing for an empty list, a 0 or "", as protobuf leaves
    them out)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(pieces)
    cdef Py_ssize_t i, bound = 0, total = 0
    cdef list columns = [None] * n
    cdef list pieces_written = list(pieces)
    cdef list starts = [0] * n
    cdef list ends = [0] * n
    cdef object piece
    cdef object values
    cdef int kind
    cdef char *scratch
    cdef char *p
    cdef Py_ssize_t start, size
    for i in range(n):
        piece = <object>PyList_GET_ITEM(pieces, i)
        if isinstance(piece, bytes):
            continue
        number, kind, values = piece
        if not 1 <= number <= 0x1FFFFFFF or kind < _INT32 or kind > _STRING:
            raise ValueError(f"not an integer or string field: {number!r}, {kind!r}")
        if kind == _STRING or not isinstance(values, list):
            # One value: its bytes made here, then copied as a bytes piece.
            piece = _single_field(number, kind, values)
            pieces_written[i] = piece
            continue
        columns[i] = (number, kind, values)
        bound += PyList_GET_SIZE(<list>values) * _MAX_VARINT
    # Each column's varints go to one scratch buffer first: its length comes before them.
    scratch = <char *>PyMem_Malloc(bound if bound > 0 else 1)
    if scratch == NULL:
        raise MemoryError()
    try:
        p = scratch
        for i in range(n):
            piece = <object>PyList_GET_ITEM(pieces_written, i)
            if columns[i] is None:
                total += PyBytes_GET_SIZE(piece)
                continue
            number, kind, values = columns[i]
            if PyList_GET_SIZE(<list>values) * _MAX_VARINT > bound - (p - scratch):
                raise RuntimeError("a column grew while it was written")
            start = p - scratch
            p = _put_column(p, <list>values, kind)
            starts[i] = start
            ends[i] = p - scratch
            size = (p - scratch) - start
            if size:
                total += _varint_size((<uint64_t>number << 3) | _LENGTH_DELIMITED)
                total += _varint_size(<uint64_t>size) + size
        out = PyBytes_FromStringAndSize(NULL, total)
        p = PyBytes_AS_STRING(out)
        for i in range(n):
            piece = <object>PyList_GET_ITEM(pieces_written, i)
            if columns[i] is None:
                memcpy(p, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece))
                p += PyBytes_GET_SIZE(piece)
                continue
            start = starts[i]
            size = <Py_ssize_t>ends[i] - start
            if size == 0:
                continue
            p = _put_varint(p, (<uint64_t>columns[i][0] << 3) | _LENGTH_DELIMITED)
            p = _put_varint(p, <uint64_t>size)
            memcpy(p, scratch + start, size)
            p += size
        return out
    finally:
        PyMem_Free(scratch)
