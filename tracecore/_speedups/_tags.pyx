"""Tag checks of a batch of codes in C, under each signing key's ``_hmac.HmacKey``.

The references are ``check_tags`` in ``tracecore.schemes.gs1`` and ``_check_tag`` in
``tracecore.schemes.nmpa``; tests feed both the same codes and compare the answers.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.string cimport memcpy

from tracecore._speedups._hmac cimport HmacKey
from tracecore._speedups._text cimport (
    PyUnicode_1BYTE_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_IS_ASCII,
)

cdef enum:
    _BLOCK = 64
    _GS1_SERIAL = 20
    _GS1_TAG = 6
    _NMPA_SERIAL = 13
    _NMPA_CHECK = 4
    # A message at most this long is built on the stack; every well-formed code's is far shorter.
    _MESSAGE_MAX = 96

cdef bytes _ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# The value of each character of the alphabet, -1 for any other byte.
cdef signed char _VALUE[256]
for _i in range(256):
    _VALUE[_i] = -1
for _i in range(32):
    _VALUE[_ALPHABET[_i]] = _i


cdef inline Py_ssize_t _message(object product, object serial, Py_ssize_t kept,
                                char letter, unsigned char *buffer):
    """Write letter + product + serial[:kept] into ``buffer``; its length, or -1 when the
    product is not ASCII or too long for the buffer (the caller goes the Python way)."""
    if type(product) is not str or not PyUnicode_IS_ASCII(product):
        return -1
    cdef Py_ssize_t length = PyUnicode_GET_LENGTH(product)
    if 1 + length + kept > _MESSAGE_MAX:
        return -1
    buffer[0] = letter
    memcpy(buffer + 1, PyUnicode_1BYTE_DATA(product), length)
    memcpy(buffer + 1 + length, PyUnicode_1BYTE_DATA(serial), kept)
    return 1 + length + kept


cdef object _gs1_check(object code, dict keys):
    cdef object serial = code.serial
    if (type(serial) is not str or PyUnicode_GET_LENGTH(serial) != _GS1_SERIAL
            or not PyUnicode_IS_ASCII(serial)):
        return None
    cdef const unsigned char *chars = <const unsigned char *>PyUnicode_1BYTE_DATA(serial)
    cdef int high = _VALUE[chars[0]]
    cdef int low = _VALUE[chars[1]]
    if high < 0 or low < 0 or (high == 0 and low == 0):
        return None
    key_id = high * 32 + low
    cdef PyObject *found = PyDict_GetItem(keys, key_id)
    if found is NULL:
        return None
    cdef HmacKey key = <HmacKey>found
    cdef unsigned char buffer[_MESSAGE_MAX]
    cdef unsigned char digest[32]
    cdef Py_ssize_t size = _message(code.product, serial, _GS1_SERIAL - _GS1_TAG, b"G", buffer)
    if size < 0:
        message = f"G{code.product}{serial[:-_GS1_TAG]}".encode("ascii")
        key.mac(<const unsigned char *>PyBytes_AS_STRING(message), len(message), digest)
    else:
        key.mac(buffer, size, digest)
    # Compared in constant time; the serial's alphabet (public) after the tag.
    cdef unsigned char difference = 0
    cdef int i
    for i in range(_GS1_TAG):
        difference |= _ALPHABET[digest[i] & 31] ^ chars[_GS1_SERIAL - _GS1_TAG + i]
    if difference:
        return None
    for i in range(_GS1_SERIAL):
        if _VALUE[chars[i]] < 0:
            return None
    return key_id


def gs1_check_tags(codes, dict keys):
    """``tracecore.schemes.gs1.check_tags`` of ``codes`` under ``keys`` (key id -> HmacKey)."""
    cdef Py_ssize_t n = len(codes)
    cdef list out = PyList_New(n)
    cdef Py_ssize_t row
    for row in range(n):
        answer = _gs1_check(codes[row], keys)
        Py_INCREF(answer)
        PyList_SET_ITEM(out, row, answer)
    return out


def nmpa_check_tag(code, keys):
    """``tracecore.schemes.nmpa._check_tag`` of one code under ``keys``, an iterable of (key id,
    HmacKey) in the order the reference tries them."""
    serial = code.serial
    if (type(serial) is not str or PyUnicode_GET_LENGTH(serial) != _NMPA_SERIAL
            or not PyUnicode_IS_ASCII(serial)):
        return None
    cdef const unsigned char *chars = <const unsigned char *>PyUnicode_1BYTE_DATA(serial)
    cdef int i
    for i in range(_NMPA_SERIAL):
        if not 48 <= chars[i] <= 57:
            return None
    cdef long digit = chars[0] - 48
    cdef unsigned char buffer[_MESSAGE_MAX]
    cdef unsigned char digest[32]
    cdef const unsigned char *message
    cdef Py_ssize_t size = _message(code.product, serial, _NMPA_SERIAL - _NMPA_CHECK, b"N",
                                    buffer)
    if size < 0:
        encoded = code.key()[:-_NMPA_CHECK]
        message, size = <const unsigned char *>PyBytes_AS_STRING(encoded), len(encoded)
    else:
        message = buffer
    cdef unsigned long long head
    cdef unsigned int check
    cdef unsigned char difference
    cdef HmacKey key
    for key_id, key in keys:
        if key_id % 10 != digit:
            continue
        key.mac(message, size, digest)
        head = 0
        for i in range(8):
            head = (head << 8) | digest[i]
        check = head % 10000
        difference = 0
        for i in range(_NMPA_CHECK - 1, -1, -1):
            difference |= (48 + check % 10) ^ chars[_NMPA_SERIAL - _NMPA_CHECK + i]
            check //= 10
        if not difference:
            return key_id
    return None
