# distutils: libraries = crypto
"""AES-256-SIV (RFC 5297, no associated data) of the serial part of code keys, a batch a call.

The twin of ``tracecore.ledger.code_keys.CodeKeys``'s ``stored`` / ``plain`` loops, which keep
``cryptography``'s ``AESSIV`` as the reference the tests compare against, byte for byte. A
key's first byte (its scheme letter) gives, through a 256-byte table, how many bytes stay in
clear; the rest is the serial, stored as the synthetic IV (16 bytes) then the ciphertext, as
``AESSIV.encrypt(serial, None)`` gives it.

S2V (AES-CMAC under the first half of the key) and CTR (under the second) are written here over
two AES-256 block ciphers of OpenSSL's EVP (AES-NI where the CPU has it), keyed once per
``SivKey``, with the CMAC subkeys and the S2V of no associated data worked out once as well.
OpenSSL's own "AES-256-SIV" encrypts once per keyed context: each code needs a copy of one
(two more context copies inside), which is most of its cost (0.8 µs a code here against 1.1 µs
through ``AESSIV``). A batch runs without the GIL on its own copies of the keyed contexts.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from tracecore.errors import LedgerCorrupt

cdef extern from "openssl/evp.h":
    ctypedef struct EVP_CIPHER:
        pass
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct OSSL_LIB_CTX:
        pass
    EVP_CIPHER *EVP_CIPHER_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties)
    void EVP_CIPHER_free(EVP_CIPHER *cipher)
    EVP_CIPHER_CTX *EVP_CIPHER_CTX_new() nogil
    void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX *ctx) nogil
    int EVP_CIPHER_CTX_copy(EVP_CIPHER_CTX *out, const EVP_CIPHER_CTX *inp) nogil
    int EVP_CIPHER_CTX_set_padding(EVP_CIPHER_CTX *ctx, int pad)
    int EVP_EncryptInit_ex2(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher,
                            const unsigned char *key, const unsigned char *iv, const void *params)
    int EVP_EncryptUpdate(EVP_CIPHER_CTX *ctx, unsigned char *out, int *outl,
                          const unsigned char *inp, int inl) nogil

cdef extern from "openssl/crypto.h":
    int CRYPTO_memcmp(const void *a, const void *b, size_t size) nogil
    void OPENSSL_cleanse(void *ptr, size_t size) nogil

cdef extern from "openssl/err.h":
    void ERR_clear_error() nogil

cdef enum:
    KEY = 64      # two AES-256 keys: S2V (CMAC), then CTR
    HALF = 32
    BLOCK = 16    # also the synthetic IV's size, before the ciphertext
    RUN = 16      # CTR blocks encrypted a call
    MAX_SERIAL = 1 << 20


cdef struct _Keyed:
    EVP_CIPHER_CTX *mac   # AES-256 (one block a call) under the first half of the key
    EVP_CIPHER_CTX *ctr   # AES-256 under the second half
    unsigned char sub1[BLOCK]    # CMAC subkeys
    unsigned char sub2[BLOCK]
    unsigned char zero_mac[BLOCK]    # CMAC of the zero block: S2V's D before the serial
    unsigned char zero_mac2[BLOCK]   # its double, for a serial shorter than a block


cdef class SivKey:
    """One AES-256-SIV key, set up once."""

    cdef _Keyed _keyed    # only read once set up: each batch runs on its own copies
    cdef _Keyed _single   # for one code a call, with the GIL held
    cdef unsigned char _cut[256]

    def __cinit__(self):
        memset(&self._keyed, 0, sizeof(_Keyed))
        memset(&self._single, 0, sizeof(_Keyed))

    def __init__(self, bytes key, bytes clear):
        """``key``: 64 bytes (``AESSIV``'s); ``clear``: 256 bytes, for each first byte of a
        code key how many bytes stay in clear (0: no code key begins with it)."""
        if len(key) != KEY or len(clear) != 256:
            raise ValueError("an AES-256-SIV key is 64 bytes and the clear table 256")
        cdef const unsigned char *k = <const unsigned char *>PyBytes_AS_STRING(key)
        cdef EVP_CIPHER *aes = EVP_CIPHER_fetch(NULL, b"AES-256-ECB", NULL)
        cdef unsigned char zero[BLOCK]
        cdef unsigned char block[BLOCK]
        if aes == NULL:
            ERR_clear_error()
            raise RuntimeError("this OpenSSL has no AES-256")
        try:
            self._keyed.mac = EVP_CIPHER_CTX_new()
            self._keyed.ctr = EVP_CIPHER_CTX_new()
            if (self._keyed.mac == NULL or self._keyed.ctr == NULL
                    or EVP_EncryptInit_ex2(self._keyed.mac, aes, k, NULL, NULL) != 1
                    or EVP_EncryptInit_ex2(self._keyed.ctr, aes, k + HALF, NULL, NULL) != 1
                    or EVP_CIPHER_CTX_set_padding(self._keyed.mac, 0) != 1
                    or EVP_CIPHER_CTX_set_padding(self._keyed.ctr, 0) != 1):
                ERR_clear_error()
                raise RuntimeError("OpenSSL could not set up AES-256")
        finally:
            EVP_CIPHER_free(aes)
        memset(zero, 0, BLOCK)
        if not _aes(self._keyed.mac, zero, block, BLOCK):
            raise RuntimeError("OpenSSL could not encrypt with AES-256")
        _double(block, self._keyed.sub1)
        _double(self._keyed.sub1, self._keyed.sub2)
        if not _cmac(&self._keyed, zero, BLOCK, NULL, self._keyed.zero_mac):
            raise RuntimeError("OpenSSL could not encrypt with AES-256")
        _double(self._keyed.zero_mac, self._keyed.zero_mac2)
        OPENSSL_cleanse(block, BLOCK)
        if not _copy(&self._keyed, &self._single):
            ERR_clear_error()
            raise MemoryError()
        memcpy(self._cut, PyBytes_AS_STRING(clear), 256)

    def __dealloc__(self):
        _free(&self._keyed)
        _free(&self._single)

    def __repr__(self):
        return "SivKey(<secret>)"

    def __reduce__(self):
        raise TypeError("a SivKey is not pickled: it holds a secret")

    def stored(self, bytes key):
        """The key with its serial encrypted: clear part, synthetic IV, ciphertext."""
        return self._one(key, 1)

    def plain(self, stored):
        """``stored``'s key back (bytes or a buffer); LedgerCorrupt when it does not decrypt."""
        return self._one(stored, 0)

    def stored_many(self, keys):
        """``stored`` of every key of ``keys`` (bytes), in order."""
        return self._run(list(keys), 1)

    def plain_many(self, stored):
        """``plain`` of every stored key of ``stored`` (bytes or buffers), in order. A buffer
        is copied as it comes: an LMDB cursor's may not outlive its next step."""
        return self._run([s if PyBytes_Check(s) else bytes(s) for s in stored], 0)

    cdef bytes _output(self, const unsigned char *key, Py_ssize_t size, bint encrypt):
        """The output for ``key`` with its clear part in place, after checking ``key``."""
        cdef Py_ssize_t cut = self._cut[key[0]] if size else 0
        cdef bytes result
        if cut == 0:
            raise LedgerCorrupt("not a code key" if encrypt
                                else "a stored code key is of no known scheme")
        if size - cut > MAX_SERIAL:
            raise LedgerCorrupt("a code key's serial is too long")
        if encrypt:
            if size == cut:
                raise LedgerCorrupt("a code key without a serial")
            result = PyBytes_FromStringAndSize(NULL, size + BLOCK)
        elif size - cut <= BLOCK:
            raise LedgerCorrupt("a stored code key does not decrypt under this tenant's key")
        else:
            result = PyBytes_FromStringAndSize(NULL, size - BLOCK)
        memcpy(PyBytes_AS_STRING(result), key, cut)
        return result

    cdef bytes _one(self, object item, bint encrypt):
        """One key, on the ciphers kept for single calls: used with the GIL held only."""
        cdef Py_buffer view
        cdef const unsigned char *key
        cdef Py_ssize_t size, cut
        cdef bint viewed = not PyBytes_Check(item)
        cdef bytes result
        cdef bint done
        if viewed:
            PyObject_GetBuffer(item, &view, PyBUF_SIMPLE)
            key = <const unsigned char *>view.buf
            size = view.len
        else:
            key = <const unsigned char *>PyBytes_AS_STRING(item)
            size = PyBytes_GET_SIZE(item)
        try:
            result = self._output(key, size, encrypt)
            cut = self._cut[key[0]]
            if encrypt:
                done = _encrypt(&self._single, key + cut, size - cut,
                                <unsigned char *>PyBytes_AS_STRING(result) + cut)
            else:
                done = _decrypt(&self._single, key + cut, size - cut,
                                <unsigned char *>PyBytes_AS_STRING(result) + cut)
            if not done:
                ERR_clear_error()
                _failed(encrypt)
            return result
        finally:
            if viewed:
                PyBuffer_Release(&view)

    cdef list _run(self, list items, bint encrypt):
        cdef Py_ssize_t n = PyList_GET_SIZE(items)
        cdef Py_ssize_t i, cut
        cdef const unsigned char **inputs = <const unsigned char **>malloc(
            max(n, 1) * sizeof(void *))
        cdef Py_ssize_t *sizes = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
        cdef unsigned char **outputs = <unsigned char **>malloc(max(n, 1) * sizeof(void *))
        cdef Py_ssize_t failed = -1
        cdef bint copied = False
        cdef int done
        cdef list out = PyList_New(n)
        cdef object item, result
        cdef _Keyed work
        memset(&work, 0, sizeof(_Keyed))
        if inputs == NULL or sizes == NULL or outputs == NULL:
            free(inputs)
            free(sizes)
            free(outputs)
            raise MemoryError()
        try:
            for i in range(n):
                item = <object>PyList_GET_ITEM(items, i)
                if not PyBytes_Check(item):
                    raise TypeError("code keys are bytes")
                inputs[i] = <const unsigned char *>PyBytes_AS_STRING(item)
                sizes[i] = PyBytes_GET_SIZE(item)
                result = self._output(inputs[i], sizes[i], encrypt)
                outputs[i] = <unsigned char *>PyBytes_AS_STRING(result)
                Py_INCREF(result)
                PyList_SET_ITEM(out, i, result)
            with nogil:
                copied = _copy(&self._keyed, &work)
                for i in range(n if copied else 0):
                    cut = self._cut[inputs[i][0]]
                    if encrypt:
                        done = _encrypt(&work, inputs[i] + cut, sizes[i] - cut,
                                        outputs[i] + cut)
                    else:
                        done = _decrypt(&work, inputs[i] + cut, sizes[i] - cut,
                                        outputs[i] + cut)
                    if not done:
                        failed = i
                        break
                if not copied or failed >= 0:
                    ERR_clear_error()
            if not copied:
                raise MemoryError()
            if failed >= 0:
                _failed(encrypt)
            return out
        finally:
            _free(&work)
            free(inputs)
            free(sizes)
            free(outputs)


cdef void _failed(bint encrypt) except *:
    if encrypt:  # OpenSSL failed: out of memory, or no AES
        raise RuntimeError("OpenSSL could not encrypt a code key")
    raise LedgerCorrupt("a stored code key does not decrypt under this tenant's key")


cdef bint _copy(const _Keyed *keyed, _Keyed *out) noexcept nogil:
    """``keyed`` into ``out`` with ciphers of its own (freed by ``_free``, even on failure)."""
    memcpy(out, keyed, sizeof(_Keyed))
    out.mac = EVP_CIPHER_CTX_new()
    out.ctr = EVP_CIPHER_CTX_new()
    return (out.mac != NULL and out.ctr != NULL
            and EVP_CIPHER_CTX_copy(out.mac, keyed.mac) == 1
            and EVP_CIPHER_CTX_copy(out.ctr, keyed.ctr) == 1)


cdef void _free(_Keyed *keyed) noexcept nogil:
    EVP_CIPHER_CTX_free(keyed.mac)
    EVP_CIPHER_CTX_free(keyed.ctr)
    OPENSSL_cleanse(keyed, sizeof(_Keyed))


cdef inline bint _aes(EVP_CIPHER_CTX *cipher, const unsigned char *inp, unsigned char *out,
                      int size) noexcept nogil:
    """Whole blocks of ``inp`` encrypted (ECB) into ``out``."""
    cdef int written = 0
    return EVP_EncryptUpdate(cipher, out, &written, inp, size) == 1 and written == size


cdef inline void _double(const unsigned char *block, unsigned char *out) noexcept nogil:
    """``dbl`` of RFC 5297 (and the CMAC subkeys'): times x in GF(2^128)."""
    cdef int i
    cdef unsigned char carry = block[0] >> 7
    for i in range(BLOCK - 1):
        out[i] = <unsigned char>((block[i] << 1) | (block[i + 1] >> 7))
    out[BLOCK - 1] = <unsigned char>((block[BLOCK - 1] << 1) ^ (0x87 if carry else 0))


cdef bint _cmac(const _Keyed *keyed, const unsigned char *message, Py_ssize_t size,
                const unsigned char *end_xor, unsigned char *out) noexcept nogil:
    """AES-CMAC of ``message``, whose last 16 bytes are first xored with ``end_xor`` if given
    (S2V's ``xorend``; then ``size`` >= 16)."""
    cdef unsigned char state[BLOCK]
    cdef unsigned char byte
    cdef Py_ssize_t blocks = (size + BLOCK - 1) // BLOCK if size else 1
    cdef Py_ssize_t block, j, at
    cdef Py_ssize_t tail = size - BLOCK  # where end_xor starts
    cdef const unsigned char *sub = &keyed.sub2[0]
    if size and size % BLOCK == 0:
        sub = &keyed.sub1[0]
    memset(state, 0, BLOCK)
    for block in range(blocks):
        for j in range(BLOCK):
            at = block * BLOCK + j
            if at < size:
                byte = message[at]
                if end_xor != NULL and at >= tail:
                    byte ^= end_xor[at - tail]
            else:
                byte = 0x80 if at == size else 0
            if block == blocks - 1:
                byte ^= sub[j]
            state[j] ^= byte
        if not _aes(keyed.mac, state, state, BLOCK):
            return False
    memcpy(out, state, BLOCK)
    return True


cdef bint _s2v(const _Keyed *keyed, const unsigned char *serial, Py_ssize_t size,
               unsigned char *out) noexcept nogil:
    """S2V of ``serial`` alone (no associated data): the synthetic IV."""
    cdef unsigned char block[BLOCK]
    cdef Py_ssize_t j
    if size >= BLOCK:
        return _cmac(keyed, serial, size, keyed.zero_mac, out)
    for j in range(BLOCK):
        block[j] = keyed.zero_mac2[j] ^ (serial[j] if j < size else (0x80 if j == size else 0))
    return _cmac(keyed, block, BLOCK, NULL, out)


cdef bint _ctr(const _Keyed *keyed, const unsigned char *siv, const unsigned char *inp,
               Py_ssize_t size, unsigned char *out) noexcept nogil:
    """``inp`` xored with AES-CTR's key stream from the synthetic IV (RFC 5297's Q)."""
    cdef unsigned char counters[RUN * BLOCK]
    cdef unsigned char stream[RUN * BLOCK]
    cdef unsigned char counter[BLOCK]
    cdef Py_ssize_t done = 0, run, j, blocks
    cdef int k
    memcpy(counter, siv, BLOCK)
    counter[8] &= 0x7F
    counter[12] &= 0x7F
    while done < size:
        run = min(size - done, RUN * BLOCK)
        blocks = (run + BLOCK - 1) // BLOCK
        for j in range(blocks):
            memcpy(counters + j * BLOCK, counter, BLOCK)
            k = BLOCK - 1
            while k >= 0:  # the counter is one 128-bit big-endian number
                counter[k] += 1
                if counter[k]:
                    break
                k -= 1
        if not _aes(keyed.ctr, counters, stream, <int>(blocks * BLOCK)):
            return False
        for j in range(run):
            out[done + j] = inp[done + j] ^ stream[j]
        done += run
    return True


cdef bint _encrypt(const _Keyed *keyed, const unsigned char *serial, Py_ssize_t size,
                   unsigned char *out) noexcept nogil:
    """The synthetic IV then the ciphertext of ``serial`` into ``out`` (``size + 16``)."""
    return _s2v(keyed, serial, size, out) and _ctr(keyed, out, serial, size, out + BLOCK)


cdef bint _decrypt(const _Keyed *keyed, const unsigned char *stored, Py_ssize_t size,
                   unsigned char *out) noexcept nogil:
    """The serial of ``stored`` (synthetic IV then ciphertext, ``size`` bytes) into ``out``;
    False, with ``out`` zeroed, when the IV is not the serial's."""
    cdef unsigned char siv[BLOCK]
    if (_ctr(keyed, stored, stored + BLOCK, size - BLOCK, out)
            and _s2v(keyed, out, size - BLOCK, siv)
            and CRYPTO_memcmp(siv, stored, BLOCK) == 0):
        return True
    memset(out, 0, size - BLOCK)
    return False
