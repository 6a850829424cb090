# The one key sort of the compiled loops (a stable radix sort of bytes keys, see ``key_order``
# in _records.pyx): the ledger's writes and the scan statistics' reads and merge ``cimport`` it
# from here.

from libc.stdint cimport uint64_t


cdef struct KeyPlace:
    uint64_t word           # the 8 bytes after the keys' shared prefix, big-endian, zero-padded
    Py_ssize_t index        # the key's place in the list given


cdef KeyPlace* key_order(list keys) except NULL
