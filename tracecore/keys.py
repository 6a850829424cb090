"""Per-tenant signing keys: states, the key ring, and its encrypted file."""

from __future__ import annotations

import enum
import hmac
import json
import os
import secrets
import string
import struct
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tracecore.errors import FailedPrecondition, InvalidArgument, KeyRingError, NotFound
from tracecore.files import fsync_directory, os_reason, read_bounded, write_atomic
from tracecore.mac import Mac

if TYPE_CHECKING:
    from tracecore._speedups._hmac import HmacKey

MAX_KEY_ID: Final = 1023
SECRET_BYTES: Final = 32
PASSPHRASE_ENV: Final = "PHARMATRACE_KEY_PASSPHRASE"  # noqa: S105 - a variable name
KEY_FILE_ENV: Final = "PHARMATRACE_KEY_FILE"
# Public on purpose: `make run` and tests use it so that no real secret is needed to develop.
# A ring saved under it is protected by nothing; production sets one of the variables above.
DEVELOPMENT_PASSPHRASE: Final = "pharmatrace-development-only-not-a-secret"  # noqa: S105

# File layout, big-endian; the whole header is the AES-GCM associated data:
# magic 8 | version 1 | kdf 1 | scrypt n 4 | scrypt r 4 | scrypt p 4 | salt 16 | nonce 12
# followed by the ciphertext of the JSON key list and the 16-byte GCM tag.
_MAGIC: Final = b"PTKEYRNG"
_FORMAT_VERSION: Final = 1
_HEADER: Final = struct.Struct(">8sBBIII16s12s")
_SALT_BYTES: Final = 16
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
# 1023 keys serialize to about 150 KiB; anything far larger is not a key ring.
_MAX_FILE_BYTES: Final = 1 << 20
_MAX_KEY_FILE_BYTES: Final = 4096

_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
# The header is read before it can be authenticated, so a tampered one must not be able to
# make scrypt allocate gigabytes or run for minutes: bound its memory and its work.
_SCRYPT_MAX_MEMORY: Final = 256 << 20
_SCRYPT_MAX_WORK: Final = 1 << 22
_HKDF_INFO: Final = b"pharmatrace key ring v1"

_UNDECRYPTABLE: Final = (
    "key ring cannot be decrypted: wrong passphrase or key file, or the file was modified"
)


class KeyState(enum.StrEnum):
    """Where a key is in its life; only ever moves forward."""

    ACTIVE = "active"  # exactly one per ring: mints and verifies
    RETIRED = "retired"  # verifies codes minted before a rotation, mints nothing
    REVOKED = "revoked"  # compromised: its codes are recognised so they can be flagged


@dataclass(frozen=True)
class SigningKey:
    """One 256-bit signing key; ``mac`` is its HMAC set up once, for the mint and verify loops."""

    key_id: int
    state: KeyState
    created_at: float
    changed_at: float
    secret: bytes = field(repr=False)
    mac: Mac = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.key_id, bool) or not 1 <= self.key_id <= MAX_KEY_ID:
            raise InvalidArgument(f"must be 1..{MAX_KEY_ID}", field="key_id")
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_BYTES:
            raise InvalidArgument(f"must be {SECRET_BYTES} bytes", field="secret")
        object.__setattr__(self, "mac", Mac(self.secret))


@dataclass(frozen=True)
class _View:
    """One consistent state of a ring, swapped whole so readers never need the lock; what every
    verification asks of it is worked out once per state."""

    keys: Mapping[int, SigningKey]
    active: SigningKey
    macs: Mapping[int, Mac]
    native: dict[int, HmacKey] | None
    revoked: frozenset[int]


class KeyRing:
    """A tenant's signing keys: one active, older ones retired, compromised ones revoked.

    Keys never leave the ring, so key ids are never reused. Mutations change the ring in place
    under a lock and return the key they changed; readers see either the old or the new state.
    """

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self._lock = threading.Lock()
        self._view = _make_view(keys)

    @classmethod
    def generate(cls, now: float | None = None) -> KeyRing:
        """A new ring holding one active key, id 1."""
        at = _now(now)
        return cls([SigningKey(1, KeyState.ACTIVE, at, at, secrets.token_bytes(SECRET_BYTES))])

    @property
    def active(self) -> SigningKey:
        return self._view.active

    def get(self, key_id: int) -> SigningKey:
        key = self._view.keys.get(key_id)
        if key is None:
            raise NotFound(f"signing key {key_id} does not exist", field="key_id")
        return key

    def state_of(self, key_id: int) -> KeyState:
        return self.get(key_id).state

    def keys(self) -> list[SigningKey]:
        """Every key, revoked ones included, by ascending id."""
        return list(self._view.keys.values())

    def __iter__(self) -> Iterator[SigningKey]:
        """Every key by ascending id, as :meth:`keys` lists them."""
        return iter(self._view.keys.values())

    def macs(self) -> Mapping[int, Mac]:
        """The MAC of every key by id, revoked ones included so their codes can be flagged."""
        return self._view.macs

    def native_macs(self) -> dict[int, HmacKey] | None:
        """The same keys in C (``Mac.native``) by id, for the compiled loops; None without the
        extension. Shared: not to be changed."""
        return self._view.native

    def revoked(self) -> frozenset[int]:
        """The ids of the revoked keys."""
        return self._view.revoked

    def rotate(self, now: float | None = None) -> SigningKey:
        """Make a new active key with the next id; the old active key becomes retired."""
        with self._lock:
            return self._rotate(_now(now))

    def retire(self, key_id: int) -> SigningKey:
        """Confirm that a key is retired, so a repeated retire request succeeds.

        Rotation is the only way into RETIRED, so this changes nothing: retiring the active
        key (rotate instead) or a revoked one is refused.
        """
        key = self.get(key_id)
        if key.state is KeyState.ACTIVE:
            raise FailedPrecondition(
                f"key {key_id} is the active key: rotate to retire it", field="key_id"
            )
        if key.state is KeyState.REVOKED:
            raise FailedPrecondition(
                f"key {key_id} is revoked and cannot be retired", field="key_id"
            )
        return key

    def revoke(self, key_id: int, now: float | None = None) -> SigningKey:
        """Mark a key compromised; revoking the active key rotates first so minting goes on."""
        with self._lock:
            at = _now(now)
            key = self.get(key_id)
            if key.state is KeyState.REVOKED:
                return key
            if key.state is KeyState.ACTIVE:
                self._rotate(at)
            revoked = replace(self.get(key_id), state=KeyState.REVOKED, changed_at=at)
            self._view = _make_view({**self._view.keys, key_id: revoked}.values())
            return revoked

    def save(self, path: str | os.PathLike[str], source: KeySource) -> None:
        """Encrypt the ring under ``source`` and replace the file at ``path`` atomically."""
        kdf, n, r, p = source._header_params()
        # The salt, and with it the derived key, is fresh on every save as well as the nonce,
        # so no (key, nonce) pair is ever used twice.
        salt = secrets.token_bytes(_SALT_BYTES)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, kdf, n, r, p, salt, nonce)
        # Under the lock, so that of two saves racing with a mutation the newer state lands last.
        with self._lock:
            sealed = AESGCM(source._derive(salt, n, r, p)).encrypt(
                nonce, _encode(self._view.keys.values()), header
            )
            try:
                write_atomic(Path(path), header + sealed)
                fsync_directory(Path(path).parent)
            except OSError as exc:
                raise KeyRingError(
                    f"key ring file cannot be written: {os_reason(exc)}"
                ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], source: KeySource) -> KeyRing:
        """Read and decrypt a ring written by :meth:`save`; any change to the file fails."""
        blob = read_bounded(Path(path), _MAX_FILE_BYTES, "key ring file", KeyRingError)
        if len(blob) < _HEADER.size + _TAG_BYTES:
            raise KeyRingError("key ring file is truncated")
        magic, version, kdf_id, n, r, p, salt, nonce = _HEADER.unpack_from(blob)
        if magic != _MAGIC:
            raise KeyRingError("not a pharmatrace key ring file")
        if version != _FORMAT_VERSION:
            raise KeyRingError(f"key ring format version {version} is not supported")
        kdf = _check_kdf(kdf_id, n, r, p)
        if kdf is not source._kdf:
            raise KeyRingError(
                f"key ring is protected by a {kdf.label} but a {source._kdf.label} was given"
            )
        header = blob[: _HEADER.size]
        try:
            plaintext = AESGCM(source._derive(salt, n, r, p)).decrypt(
                nonce, blob[_HEADER.size :], header
            )
        except InvalidTag:
            raise KeyRingError(_UNDECRYPTABLE) from None
        return cls(_decode(plaintext))

    def _rotate(self, at: float) -> SigningKey:
        view = self._view
        next_id = max(view.keys) + 1
        if next_id > MAX_KEY_ID:
            raise FailedPrecondition(
                f"all {MAX_KEY_ID} key ids are used; this tenant cannot rotate again",
                field="key_id",
            )
        new = SigningKey(next_id, KeyState.ACTIVE, at, at, secrets.token_bytes(SECRET_BYTES))
        retired = replace(view.active, state=KeyState.RETIRED, changed_at=at)
        self._view = _make_view({**view.keys, retired.key_id: retired, next_id: new}.values())
        return new

    def __repr__(self) -> str:
        listed = ", ".join(f"{key.key_id}:{key.state}" for key in self._view.keys.values())
        return f"KeyRing(active={self._view.active.key_id}, keys=[{listed}])"


class _Kdf(enum.IntEnum):
    """How the key-encryption key is derived; the value is the header's KDF id."""

    SCRYPT = 1  # from a passphrase
    HKDF_SHA256 = 2  # from a 32-byte key file, with the file's salt so each save gets its own key

    @property
    def label(self) -> str:
        return "passphrase" if self is _Kdf.SCRYPT else "key file"


class KeySource:
    """Where a ring's key-encryption key comes from: a passphrase or a 32-byte key file.

    Build one with :meth:`from_env` in production; :meth:`dev` is for development only.
    """

    __slots__ = ("_is_development", "_kdf", "_material")

    def __init__(self, kdf: _Kdf, material: bytes) -> None:
        self._kdf = kdf
        self._material = material
        self._is_development = kdf is _Kdf.SCRYPT and hmac.compare_digest(
            material, DEVELOPMENT_PASSPHRASE.encode()
        )

    @classmethod
    def passphrase(cls, passphrase: str | bytes) -> KeySource:
        """A passphrase, stretched by scrypt with a fresh salt on every save."""
        if isinstance(passphrase, str):
            # NFC so that the same passphrase typed on different systems gives the same bytes.
            passphrase = unicodedata.normalize("NFC", passphrase).encode()
        if not passphrase:
            raise KeyRingError("key ring passphrase is empty")
        return cls(_Kdf.SCRYPT, passphrase)

    @classmethod
    def key_file(cls, path: str | os.PathLike[str]) -> KeySource:
        """A key file holding exactly 32 raw bytes, or 64 hex characters (whitespace around)."""
        content = read_bounded(Path(path), _MAX_KEY_FILE_BYTES, "key file", KeyRingError)
        if len(content) == SECRET_BYTES:
            return cls(_Kdf.HKDF_SHA256, content)
        text = content.strip()
        if len(text) == 2 * SECRET_BYTES and all(chr(c) in string.hexdigits for c in text):
            return cls(_Kdf.HKDF_SHA256, bytes.fromhex(text.decode("ascii")))
        raise KeyRingError(
            f"key file must hold {SECRET_BYTES} raw bytes or {2 * SECRET_BYTES} hex characters"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KeySource:
        """The source named by exactly one of PHARMATRACE_KEY_PASSPHRASE, PHARMATRACE_KEY_FILE."""
        passphrase = environ.get(PASSPHRASE_ENV, "")
        key_file = environ.get(KEY_FILE_ENV, "")
        if passphrase and key_file:
            raise KeyRingError(f"set only one of {PASSPHRASE_ENV} and {KEY_FILE_ENV}")
        if passphrase:
            return cls.passphrase(passphrase)
        if key_file:
            return cls.key_file(key_file)
        raise KeyRingError(
            f"no key-encryption key configured: set {PASSPHRASE_ENV} or {KEY_FILE_ENV}"
        )

    @classmethod
    def dev(cls) -> KeySource:
        """The fixed, public development passphrase: never for production data."""
        return cls.passphrase(DEVELOPMENT_PASSPHRASE)

    @property
    def is_development(self) -> bool:
        """True when this is the public development passphrase, however it was supplied."""
        return self._is_development

    def derived_key(self, purpose: str) -> bytes:
        """A 32-byte secret for ``purpose`` (signing backup manifests), derived from the
        key-encryption key: whoever can write the files but cannot open the key rings lacks it."""
        salt = hmac.digest(b"pharmatrace derived key", purpose.encode(), "sha256")
        _, n, r, p = self._header_params()
        return self._derive(salt, n, r, p)

    def _header_params(self) -> tuple[_Kdf, int, int, int]:
        if self._kdf is _Kdf.SCRYPT:
            return self._kdf, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P
        return self._kdf, 0, 0, 0

    def _derive(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        if self._kdf is _Kdf.SCRYPT:
            return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self._material)
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO
        ).derive(self._material)

    def __repr__(self) -> str:
        if self._is_development:
            return "KeySource(development passphrase)"
        return f"KeySource({self._kdf.label})"


def write_key_file(path: str | os.PathLike[str]) -> None:
    """Create a new random key file (64 hex characters, mode 0600); never overwrites one."""
    target = Path(path)
    data = (secrets.token_hex(SECRET_BYTES) + "\n").encode("ascii")
    try:
        # O_EXCL refuses an existing file or symlink; the mode is 0600 before any byte is written.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyRingError("key file already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyRingError(f"key file cannot be created: {os_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        fsync_directory(target.parent)
    except OSError as exc:
        raise KeyRingError(f"key file cannot be written: {os_reason(exc)}") from None


def _make_view(keys: Iterable[SigningKey]) -> _View:
    by_id: dict[int, SigningKey] = {}
    for key in sorted(keys, key=lambda k: k.key_id):
        if key.key_id in by_id:
            raise InvalidArgument(f"key id {key.key_id} appears twice", field="keys")
        by_id[key.key_id] = key
    active = [key for key in by_id.values() if key.state is KeyState.ACTIVE]
    if len(active) != 1:
        raise InvalidArgument(
            f"a key ring needs exactly one active key, not {len(active)}", field="keys"
        )
    macs = MappingProxyType({key_id: key.mac for key_id, key in by_id.items()})
    native = {key_id: mac.native for key_id, mac in macs.items() if mac.native is not None}
    revoked = frozenset(k.key_id for k in by_id.values() if k.state is KeyState.REVOKED)
    return _View(by_id, active[0], macs, native if len(native) == len(macs) else None, revoked)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _check_kdf(kdf_id: int, n: int, r: int, p: int) -> _Kdf:
    """The header's KDF, refused before any work if its parameters are unknown or too costly."""
    if kdf_id == _Kdf.HKDF_SHA256 and n == r == p == 0:
        return _Kdf.HKDF_SHA256
    if kdf_id == _Kdf.SCRYPT:
        if n < 2 or n & (n - 1) or r < 1 or p < 1:
            raise KeyRingError("key ring header has invalid scrypt parameters")
        if 128 * r * (n + p) > _SCRYPT_MAX_MEMORY or n * r * p > _SCRYPT_MAX_WORK:
            raise KeyRingError("key ring header asks for scrypt parameters beyond the limit")
        return _Kdf.SCRYPT
    raise KeyRingError(f"key ring uses unknown key derivation {kdf_id}")


def _encode(keys: Iterable[SigningKey]) -> bytes:
    entries = [
        {
            "id": key.key_id,
            "state": key.state.value,
            "created_at": key.created_at,
            "changed_at": key.changed_at,
            "secret": key.secret.hex(),
        }
        for key in keys
    ]
    return json.dumps({"keys": entries}, separators=(",", ":")).encode()


def _decode(plaintext: bytes) -> list[SigningKey]:
    """The keys of an authenticated plaintext; its content never reaches an error message."""
    try:
        entries = json.loads(plaintext)["keys"]
        if not isinstance(entries, list):
            raise TypeError
        keys = [_decode_key(entry) for entry in entries]
        _make_view(keys)
    except (ValueError, KeyError, TypeError, InvalidArgument):
        raise KeyRingError("key ring content is invalid") from None
    return keys


def _decode_key(entry: Any) -> SigningKey:
    key_id, created_at, changed_at = entry["id"], entry["created_at"], entry["changed_at"]
    secret = entry["secret"]
    if not (
        type(key_id) is int
        and all(type(t) in (int, float) for t in (created_at, changed_at))
        and isinstance(secret, str)
        and len(secret) == 2 * SECRET_BYTES
        and all(c in string.hexdigits for c in secret)
    ):
        raise TypeError
    return SigningKey(
        key_id, KeyState(entry["state"]), float(created_at), float(changed_at),
        bytes.fromhex(secret),
    )
