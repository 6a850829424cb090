"""A write transaction's code changes counted by kind, in C: the counters move once per kind of
change (the record's counted fields before and after), not once per code.

The reference is ``count_moves_reference`` in ``tracecore.ledger.pack_session``; tests feed
both the same changes and compare the answers. The changes of one event are mostly alike (the
packs of one pool, changed alike), so a run of changes with the same fields is counted by
comparing each with the first of its run, and a key is made only when a run ends.
"""

from cpython.object cimport Py_EQ, PyObject, PyObject_RichCompareBool
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE

cdef enum:
    _MAX_FIELDS = 32


cdef inline bint _alike(object b, object a, object first_b, object first_a, Py_ssize_t* at,
                        Py_ssize_t n) except -1:
    cdef Py_ssize_t j
    for j in range(n):
        if PyObject_RichCompareBool(<object>PyTuple_GET_ITEM(b, at[j]),
                                    <object>PyTuple_GET_ITEM(first_b, at[j]), Py_EQ) != 1:
            return False
        if PyObject_RichCompareBool(<object>PyTuple_GET_ITEM(a, at[j]),
                                    <object>PyTuple_GET_ITEM(first_a, at[j]), Py_EQ) != 1:
            return False
    return True


cdef int _add(dict counts, object b, object a, Py_ssize_t* at, Py_ssize_t n,
              Py_ssize_t run) except -1:
    cdef Py_ssize_t j
    key = tuple([<object>PyTuple_GET_ITEM(b, at[j]) for j in range(n)]
                + [<object>PyTuple_GET_ITEM(a, at[j]) for j in range(n)])
    counts[key] = counts.get(key, 0) + run
    return 0


def count_moves(list moves, tuple fields):
    """{the ``fields`` of a change's record before, then after: how many changes}, for each
    (before, after) pair of records in ``moves``."""
    cdef Py_ssize_t n = len(fields), i, j, run = 0, size = 0
    cdef Py_ssize_t at[_MAX_FIELDS]
    cdef object move, b, a, first_b = None, first_a = None
    cdef dict counts = {}
    if n > _MAX_FIELDS:
        raise ValueError(f"at most {_MAX_FIELDS} fields")
    for j in range(n):
        at[j] = fields[j]
        if at[j] < 0:
            raise ValueError("fields are places in a record")
        size = max(size, at[j] + 1)
    for i in range(len(moves)):
        move = moves[i]
        b, a = move
        if not PyTuple_Check(b) or not PyTuple_Check(a):
            raise TypeError("a change is a pair of records (tuples)")
        if PyTuple_GET_SIZE(b) < size or PyTuple_GET_SIZE(a) < size:
            raise IndexError("a record has fewer fields than asked for")
        if run:
            if (b is first_b and a is first_a) or _alike(b, a, first_b, first_a, at, n):
                run += 1
                continue
            _add(counts, first_b, first_a, at, n, run)
        first_b, first_a, run = b, a, 1
    if run:
        _add(counts, first_b, first_a, at, n, run)
    return counts
