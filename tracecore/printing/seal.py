"""Sealed print jobs: encrypted to one line controller's key and signed by the issuer's.

A job travels and rests sealed between the host that renders it and the line controller that
feeds the printers. The file is::

    header  = MAGIC, recipient X25519 public key, ephemeral X25519 public key,
              signer Ed25519 public key, chunk size (4 bytes, big-endian)
    chunks  = AES-256-GCM of each ``chunk size`` bytes of the job (the last one shorter)
    signature = Ed25519 over SHA-512(header + chunks), 64 bytes

The AES key comes from X25519 (ephemeral x recipient) through HKDF-SHA256. Each chunk's nonce is
its index and a final-chunk flag (the STREAM construction, as the age format uses), with the
header as associated data, so chunks cannot be reordered, dropped or cut off unnoticed.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tracecore.errors import FailedPrecondition, InvalidArgument

MAGIC = b"PHARMATRACE-JOB/1\n"
CHUNK = 1 << 20
_HEADER = struct.Struct(f">{len(MAGIC)}s32s32s32sI")
_SIGNATURE = 64
_TAG = 16
_INFO = b"pharmatrace sealed print job v1"


class SealRefused(FailedPrecondition):
    """A sealed job that cannot be opened: another line's key, another signer, or changed."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A line controller's or issuer's keys: X25519 to open jobs, Ed25519 to sign them."""

    agreement: X25519PrivateKey
    signing: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    @classmethod
    def derive(cls, secret: bytes, name: str) -> KeyPair:
        """The key pair ``name`` (a tenant's print-signing keys) derived from a 32-byte
        ``secret``: every process holding the secret derives the same keys, none stores them."""
        def part(purpose: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                        info=_INFO + b" " + purpose + b" " + name.encode()).derive(secret)

        return cls(X25519PrivateKey.from_private_bytes(part(b"x25519")),
                   Ed25519PrivateKey.from_private_bytes(part(b"ed25519")))

    def public(self) -> PublicKeys:
        return PublicKeys(self.agreement.public_key(), self.signing.public_key())

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """Both private keys as PKCS #8 PEM, encrypted under ``passphrase`` when one is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption())
        return b"".join(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8, encryption)
                        for key in (self.agreement, self.signing))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> KeyPair:
        agreement = signing = None
        for block in _pem_blocks(data):
            try:
                key = serialization.load_pem_private_key(block, passphrase)
            except (ValueError, TypeError) as exc:
                raise InvalidArgument(f"not a readable private key ({exc})", field="key") from None
            if isinstance(key, X25519PrivateKey):
                agreement = key
            elif isinstance(key, Ed25519PrivateKey):
                signing = key
        if agreement is None or signing is None:
            raise InvalidArgument("a key file holds an X25519 and an Ed25519 private key "
                                  "(`pharmatrace line keygen` writes one)", field="key")
        return cls(agreement, signing)


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """The public half of a ``KeyPair``: what jobs are sealed to and signatures checked with."""

    agreement: X25519PublicKey
    signing: Ed25519PublicKey

    @property
    def fingerprint(self) -> str:
        """How messages name the key jobs are sealed to: 16 hex digits of its SHA-256."""
        return _short(_raw(self.agreement))

    @property
    def signer_fingerprint(self) -> str:
        """How messages name the key that signs jobs: 16 hex digits of its SHA-256."""
        return _short(_raw(self.signing))

    def to_pem(self) -> bytes:
        return b"".join(key.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
                        for key in (self.agreement, self.signing))

    @classmethod
    def from_pem(cls, data: bytes) -> PublicKeys:
        agreement = signing = None
        for block in _pem_blocks(data):
            try:
                key = serialization.load_pem_public_key(block)
            except ValueError as exc:
                raise InvalidArgument(f"not a readable public key ({exc})", field="key") from None
            if isinstance(key, X25519PublicKey):
                agreement = key
            elif isinstance(key, Ed25519PublicKey):
                signing = key
        if agreement is None or signing is None:
            raise InvalidArgument("a public key file holds an X25519 and an Ed25519 public key",
                                  field="key")
        return cls(agreement, signing)


class Sealer:
    """A writable stream that seals everything written to it into ``out``; ``close`` signs."""

    def __init__(self, out: IO[bytes], recipient: PublicKeys, signer: KeyPair) -> None:
        ephemeral = X25519PrivateKey.generate()
        self._header = _HEADER.pack(MAGIC, _raw(recipient.agreement), _raw(ephemeral.public_key()),
                                    _raw(signer.signing.public_key()), CHUNK)
        self._aead = AESGCM(_derive(ephemeral.exchange(recipient.agreement), self._header))
        self._out = out
        self._signer = signer.signing
        self._digest = hashlib.sha512(self._header)
        self._buffer = bytearray()
        self._index = 0
        out.write(self._header)

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), final=False)
            del self._buffer[:CHUNK]
        return len(data)

    def close(self) -> None:
        """Seals what is left as the final chunk and appends the signature."""
        self._emit(bytes(self._buffer), final=True)
        self._buffer.clear()
        self._out.write(self._signer.sign(_INFO + self._digest.digest()))

    def _emit(self, plain: bytes, *, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index, final), plain, self._header)
        self._index += 1
        self._digest.update(sealed)
        self._out.write(sealed)


def seal_bytes(data: bytes, recipient: PublicKeys, signer: KeyPair) -> bytes:
    """``data`` sealed in memory (for small jobs and tests)."""
    out = io.BytesIO()
    sealer = Sealer(out, recipient, signer)
    sealer.write(data)
    sealer.close()
    return out.getvalue()


def unseal(path: Path, key: KeyPair, signer: PublicKeys | None = None) -> Iterator[bytes]:
    """The job's plaintext, chunk by chunk, once the signature over the whole file has been
    checked (and, when ``signer`` is given, found to be that issuer's). SealRefused, saying
    which, for a job sealed to another key, signed by another issuer, or changed at all."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = _read_header(f, size, key, signer)
        body = size - _HEADER.size - _SIGNATURE
        digest = hashlib.sha512(header)
        left = body
        while left:
            block = f.read(min(left, 1 << 22))
            digest.update(block)
            left -= len(block)
        signature = f.read(_SIGNATURE)
        signer_key = Ed25519PublicKey.from_public_bytes(_HEADER.unpack(header)[3])
        try:
            signer_key.verify(signature, _INFO + digest.digest())
        except InvalidSignature:
            raise SealRefused("the job was changed after it was sealed: its signature does "
                              "not verify") from None
        _, _, ephemeral, _, chunk = _HEADER.unpack(header)
        try:
            shared = key.agreement.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        except ValueError:  # a low-order point: no honest sealer writes one
            raise SealRefused("the job's header is damaged (ephemeral key)") from None
        aead = AESGCM(_derive(shared, header))
        f.seek(_HEADER.size)
        left, index = body, 0
        while True:
            n = min(left, chunk + _TAG)
            final = n == left
            try:
                yield aead.decrypt(_nonce(index, final), f.read(n), header)
            except InvalidTag:
                raise SealRefused("the job cannot be opened with this key: it was changed or "
                                  "sealed for another key") from None
            left -= n
            index += 1
            if final:
                return


def open_sealed(path: Path, key: KeyPair, signer: PublicKeys | None = None) -> IO[bytes]:
    """A readable stream of the job's plaintext (see ``unseal``: nothing is read from it before
    the whole file's signature has been checked)."""
    return io.BufferedReader(_PlainStream(unseal(path, key, signer)), buffer_size=CHUNK)


class _PlainStream(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = chunk
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _read_header(f: IO[bytes], size: int, key: KeyPair, signer: PublicKeys | None) -> bytes:
    header = f.read(_HEADER.size)
    if size < _HEADER.size + _TAG + _SIGNATURE or not header.startswith(MAGIC):
        raise SealRefused("not a sealed pharmatrace print job (or cut short)")
    _, recipient, _, signed_by, chunk = _HEADER.unpack(header)
    own = _raw(key.agreement.public_key())
    if recipient != own:
        raise SealRefused(f"the job is sealed to another line key ({_short(recipient)}), not to "
                          f"this one ({_short(own)})")
    if signer is not None and signed_by != _raw(signer.signing):
        raise SealRefused(f"the job is signed by another issuer ({_short(signed_by)}), not by "
                          f"{_short(_raw(signer.signing))}")
    if not 1 <= chunk <= 1 << 26:
        raise SealRefused("the job's header is damaged (chunk size)")
    return header


def _raw(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _derive(shared: bytes, header: bytes) -> bytes:
    # Salted with the header's public keys: the key belongs to this job and this recipient.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=header[len(MAGIC):len(MAGIC) + 64],
                info=_INFO).derive(shared)


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def _short(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def signer_of(path: Path) -> str:
    """The fingerprint of the key that signed a sealed job (read from its header, unchecked)."""
    with open(path, "rb") as f:
        header = f.read(_HEADER.size)
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        raise SealRefused("not a sealed pharmatrace print job (or cut short)")
    return _short(_HEADER.unpack(header)[3])


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks: list[bytes] = []
    for part in data.split(b"-----END ")[:-1]:
        begin = part.find(b"-----BEGIN ")
        if begin >= 0:
            kind = part[begin + 11:part.find(b"-----", begin + 11)]
            blocks.append(part[begin:] + b"-----END " + kind + b"-----\n")
    return blocks

