"""The per-code loops of issuing a pool, one call a batch: HMAC-tagged ledger keys from random
characters, serials as text (the keys are put in order by ``_records.sorted_keys``).

The compiled twin of ``tracecore.minting.Minter.mint_keys``'s loop (``tracecore.mac.Mac`` is
the reference the tests compare it against) and of slicing the serials out of them. The HMAC is ``_hmac.HmacKey``'s (OpenSSL's SHA-256 from states
set up once per key), run without the GIL, so that minting the next commit's codes does not
hold up the writer lane.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from tracecore._speedups._hmac cimport HmacKey


cdef enum:
    DIGEST = 32


def mint_keys(HmacKey mac, bytes head, bytes chars, Py_ssize_t width, bytes tag_table,
              Py_ssize_t tag_length):
    """Ledger keys ``head + part + tag``, one for each ``width`` characters ``part`` of
    ``chars``, in order, leaving out a part equal to an earlier one (so that the keys are
    distinct). The tag is the HMAC of ``head + part``: with a 256-byte ``tag_table`` its first
    ``tag_length`` bytes through the table, else its first 8 bytes (big-endian) modulo
    ``10 ** tag_length`` as that many decimal digits."""
    if width <= 0 or len(chars) % width:
        raise ValueError("chars must be whole random parts of width characters")
    if tag_length <= 0 or (tag_table and (len(tag_table) != 256 or tag_length > DIGEST)) \
            or (not tag_table and tag_length > 19):
        raise ValueError("a tag is 1 to 32 table characters or 1 to 19 digits")
    cdef Py_ssize_t n = len(chars) // width
    cdef Py_ssize_t head_length = len(head)
    cdef Py_ssize_t message_length = head_length + width
    cdef Py_ssize_t key_length = message_length + tag_length
    cdef const unsigned char *head_p = <const unsigned char *>PyBytes_AS_STRING(head)
    cdef const unsigned char *chars_p = <const unsigned char *>PyBytes_AS_STRING(chars)
    cdef const unsigned char *table = (<const unsigned char *>PyBytes_AS_STRING(tag_table)
                                       if tag_table else NULL)
    cdef unsigned char *keys = <unsigned char *>malloc(max(n * key_length, 1))
    if keys == NULL:
        raise MemoryError()
    cdef unsigned char digest[DIGEST]
    cdef unsigned char *key
    cdef uint64_t number, modulus = 1
    cdef Py_ssize_t i, j, kept
    for j in range(tag_length if table == NULL else 0):
        modulus *= 10
    # Open addressing over the parts seen so far: at most half full.
    cdef Py_ssize_t slots = 1
    while slots < 2 * n:
        slots *= 2
    cdef Py_ssize_t *seen = <Py_ssize_t *>malloc(slots * sizeof(Py_ssize_t))
    cdef unsigned char *repeated = <unsigned char *>malloc(max(n, 1))
    if seen == NULL or repeated == NULL:
        free(keys)
        free(seen)
        free(repeated)
        raise MemoryError()
    cdef uint64_t hashed
    cdef const unsigned char *part
    try:
        with nogil:
            memset(seen, 0xFF, slots * sizeof(Py_ssize_t))
            kept = 0
            for i in range(n):
                part = chars_p + i * width
                hashed = 14695981039346656037ULL  # FNV-1a
                for j in range(width):
                    hashed = (hashed ^ part[j]) * 1099511628211ULL
                j = <Py_ssize_t>(hashed & <uint64_t>(slots - 1))
                repeated[i] = 0
                while seen[j] != -1:
                    if memcmp(chars_p + seen[j] * width, part, width) == 0:
                        repeated[i] = 1
                        break
                    j = (j + 1) & (slots - 1)
                if not repeated[i]:
                    seen[j] = i
                    kept += 1
            for i in range(n):
                if repeated[i]:
                    continue
                key = keys + i * key_length
                memcpy(key, head_p, head_length)
                memcpy(key + head_length, chars_p + i * width, width)
                mac.mac(key, message_length, digest)
                if table != NULL:
                    for j in range(tag_length):
                        key[message_length + j] = table[digest[j]]
                else:
                    number = 0
                    for j in range(8):
                        number = (number << 8) | digest[j]
                    number %= modulus
                    for j in range(tag_length - 1, -1, -1):
                        key[message_length + j] = 48 + <unsigned char>(number % 10)
                        number //= 10
        out = PyList_New(kept)
        j = 0
        for i in range(n):
            if repeated[i]:
                continue
            item = PyBytes_FromStringAndSize(<char *>(keys + i * key_length), key_length)
            Py_INCREF(item)
            PyList_SET_ITEM(out, j, item)
            j += 1
        return out
    finally:
        free(keys)
        free(seen)
        free(repeated)


def serials(list keys, Py_ssize_t start):
    """``[key[start:].decode("ascii") for key in keys]``."""
    cdef Py_ssize_t n = len(keys)
    cdef Py_ssize_t i
    out = PyList_New(n)
    for i in range(n):
        key = <bytes>PyList_GET_ITEM(keys, i)
        if type(key) is not bytes or PyBytes_GET_SIZE(key) < start:
            raise ValueError("a ledger key shorter than its product part")
        text = PyUnicode_DecodeASCII(PyBytes_AS_STRING(key) + start,
                                     PyBytes_GET_SIZE(key) - start, NULL)
        Py_INCREF(text)
        PyList_SET_ITEM(out, i, text)
    return out
