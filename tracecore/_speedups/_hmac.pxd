# One HMAC-SHA256 key in C, shared by the compiled loops that tag codes (minting) and check
# tags (verification): ``cimport`` it from here.

cdef extern from *:
    """
    /* SHA256_Init / _Update / _Final: deprecated for applications in OpenSSL 3.0 in favour of
       EVP, whose per-call provider dispatch costs more than the two blocks a tag needs. */
    #define OPENSSL_API_COMPAT 10101
    #include <openssl/sha.h>
    """
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c) nogil
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t n) nogil
    int SHA256_Final(unsigned char *md, SHA256_CTX *c) nogil


cdef class HmacKey:
    cdef SHA256_CTX _inner
    cdef SHA256_CTX _outer
    cdef void mac(self, const unsigned char *message, size_t size,
                  unsigned char *digest) noexcept nogil
