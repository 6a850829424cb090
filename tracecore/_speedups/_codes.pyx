"""``tracecore.codes.parse_many`` in C: the packs of a pallet read from their shared head; and
``parsed_codes``, a batch's parsed scans, codes and ledger keys in one loop.

The reference is ``tracecore.codes._parse_many``; tests feed both the same texts and compare
the answers. Only the reading of a text whose head (all but its last 20 characters) is that of
a text already read is done in C; every other text goes to ``parse``, exactly as there.

``Code`` and ``Scan`` are frozen slotted dataclasses whose ``__init__`` only sets their fields
(``object.__setattr__``); they are made here the same way, without running that ``__init__``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject, PyObject_GenericSetAttr
from libc.string cimport memcmp, memcpy

from tracecore._speedups._text cimport (
    PyUnicode_1BYTE_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_IS_ASCII,
)

cdef enum:
    _SERIAL_LENGTH = 20

cdef bytes _ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
cdef str _ALPHABET_TEXT = _ALPHABET.decode("ascii")
cdef bint _IN_ALPHABET[256]
for _i in range(256):
    _IN_ALPHABET[_i] = False
for _i in range(32):
    _IN_ALPHABET[_ALPHABET[_i]] = True

cdef object _new = object.__new__
cdef str _SCHEME = "scheme"
cdef str _PRODUCT = "product"
cdef str _SERIAL = "serial"
cdef str _CODE = "code"
cdef str _LOT = "lot"
cdef str _EXPIRY = "expiry"


cdef inline object _scan(object code_type, object scan_type, object scheme, object product,
                         object serial, object lot, object expiry):
    code = _new(code_type)
    PyObject_GenericSetAttr(code, _SCHEME, scheme)
    PyObject_GenericSetAttr(code, _PRODUCT, product)
    PyObject_GenericSetAttr(code, _SERIAL, serial)
    scan = _new(scan_type)
    PyObject_GenericSetAttr(scan, _CODE, code)
    PyObject_GenericSetAttr(scan, _LOT, lot)
    PyObject_GenericSetAttr(scan, _EXPIRY, expiry)
    return scan


def parse_many(texts, parse, error_type, code_type, scan_type, gs1):
    """``tracecore.codes.parse_many``: ``parse`` reads what is not a known head's pack."""
    cdef list out = []
    cdef dict heads = {}
    cdef Py_ssize_t length, cut, i
    cdef const unsigned char *chars
    cdef PyObject *found
    cdef bint ours
    # The last head found, as text, and what it read as: a pallet's packs come in runs.
    cdef str last_head = None
    cdef object known = None
    for text in texts:
        if type(text) is str:
            length = PyUnicode_GET_LENGTH(text)
            cut = length - _SERIAL_LENGTH
            if cut > 0 and PyUnicode_IS_ASCII(text):
                chars = <const unsigned char *>PyUnicode_1BYTE_DATA(text)
                if not (last_head is not None and PyUnicode_GET_LENGTH(last_head) == cut
                        and memcmp(PyUnicode_1BYTE_DATA(last_head), chars, cut) == 0):
                    head = text[:cut]
                    found = PyDict_GetItem(heads, head)
                    if found is NULL:
                        last_head = None
                    else:
                        last_head, known = head, <object>found
                if last_head is not None:
                    ours = True
                    for i in range(cut, length):
                        if not _IN_ALPHABET[chars[i]]:
                            ours = False
                            break
                    if ours:
                        out.append(_scan(code_type, scan_type, gs1, known.code.product,
                                         text[cut:], known.lot, known.expiry))
                        continue
            elif cut > 0:
                # Not ASCII: read as the reference does.
                found = PyDict_GetItem(heads, text[:cut])
                if found is not NULL:
                    serial = text[cut:]
                    if not serial.strip(_ALPHABET_TEXT):
                        known = <object>found
                        out.append(_scan(code_type, scan_type, gs1, known.code.product,
                                         serial, known.lot, known.expiry))
                        continue
        try:
            scan = parse(text)
        except error_type as error:
            # Keeping the traceback would keep every failed call's frames alive with the batch.
            out.append(error.with_traceback(None))
            continue
        out.append(scan)
        serial = scan.code.serial
        if (scan.code.scheme is gs1 and type(text) is str and len(serial) == _SERIAL_LENGTH
                and text.endswith(serial) and not serial.strip(_ALPHABET_TEXT)):
            heads[text[:-_SERIAL_LENGTH]] = scan
            last_head = None
    return out


def parsed_codes(list scans, error_type, dict key_prefix):
    """``tracecore.codes.parsed_codes``: each key made from the code's ASCII fields in one copy
    (``key_prefix``: each scheme's ledger key letter); a field that is not ASCII is encoded as
    ``Code.key`` encodes it, which raises."""
    cdef list parsed = [], codes = [], keys = []
    cdef object code, prefix, product, serial
    cdef bytes key
    cdef char *out
    cdef Py_ssize_t n_prefix, n_product, n_serial
    for scan in scans:
        if isinstance(scan, error_type):
            continue
        code = scan.code
        parsed.append(scan)
        codes.append(code)
        prefix = key_prefix[code.scheme]
        product, serial = code.product, code.serial
        if not (type(product) is str and type(serial) is str and PyUnicode_IS_ASCII(product)
                and PyUnicode_IS_ASCII(serial) and type(prefix) is bytes):
            keys.append(prefix + (product + serial).encode("ascii"))
            continue
        n_prefix = PyBytes_GET_SIZE(prefix)
        n_product = PyUnicode_GET_LENGTH(product)
        n_serial = PyUnicode_GET_LENGTH(serial)
        key = PyBytes_FromStringAndSize(NULL, n_prefix + n_product + n_serial)
        out = PyBytes_AS_STRING(key)
        memcpy(out, PyBytes_AS_STRING(prefix), n_prefix)
        memcpy(out + n_prefix, PyUnicode_1BYTE_DATA(product), n_product)
        memcpy(out + n_prefix + n_product, PyUnicode_1BYTE_DATA(serial), n_serial)
        keys.append(key)
    return parsed, codes, keys
