# distutils: libraries = crypto
"""HMAC-SHA256 under one secret in C, through OpenSSL's SHA-256 (the library Python's hashlib
uses): the key blocks are hashed once per key, and ``mac`` needs no GIL. ``tracecore.mac.Mac``
holds one beside its hashlib states (``Mac.native``)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

cdef enum:
    BLOCK = 64


cdef class HmacKey:
    """HMAC-SHA256 under one secret: the SHA-256 states after the inner and outer key blocks."""

    def __init__(self, bytes padded):
        """``padded``: the secret as HMAC uses it, 64 bytes (hashed first if longer, then
        padded with zeros)."""
        cdef unsigned char inner_pad[BLOCK]
        cdef unsigned char outer_pad[BLOCK]
        cdef const unsigned char *key = <const unsigned char *>PyBytes_AS_STRING(padded)
        if len(padded) != BLOCK:
            raise ValueError("the padded secret must be 64 bytes")
        for i in range(BLOCK):
            inner_pad[i] = key[i] ^ 0x36
            outer_pad[i] = key[i] ^ 0x5C
        SHA256_Init(&self._inner)
        SHA256_Update(&self._inner, inner_pad, BLOCK)
        SHA256_Init(&self._outer)
        SHA256_Update(&self._outer, outer_pad, BLOCK)

    def __repr__(self):
        return "HmacKey(<secret>)"

    def __reduce__(self):
        raise TypeError("an HmacKey is not pickled: it holds a secret")

    cdef void mac(self, const unsigned char *message, size_t size,
                  unsigned char *digest) noexcept nogil:
        cdef SHA256_CTX context
        cdef unsigned char inner[32]
        memcpy(&context, &self._inner, sizeof(SHA256_CTX))
        SHA256_Update(&context, message, size)
        SHA256_Final(inner, &context)
        memcpy(&context, &self._outer, sizeof(SHA256_CTX))
        SHA256_Update(&context, inner, 32)
        SHA256_Final(digest, &context)

    def digest(self, bytes message):
        """``hmac.digest(secret, message, "sha256")``."""
        cdef unsigned char out[32]
        self.mac(<const unsigned char *>PyBytes_AS_STRING(message), len(message), out)
        return PyBytes_FromStringAndSize(<char *>out, 32)
