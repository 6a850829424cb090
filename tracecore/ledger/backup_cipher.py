"""A backup's LMDB files encrypted with age (X25519 and ChaCha20-Poly1305, through ``pyrage``,
the bindings of the rage implementation): a stolen backup holds no serial in clear.

Each file is encrypted to the installation's backup identity, derived from the key-encryption
key as the manifest's signing key is, so any installation holding that key restores it; and to
any further age recipients the operator names (an offline recovery key), whose age identity
files then open it as well, with the standard ``age`` tool too. age authenticates what it
decrypts: a file altered by anyone without a recipient's key is refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import bech32
import pyrage
from pyrage import x25519

from tracecore.errors import FailedPrecondition, InvalidArgument, LedgerCorrupt

SUFFIX = ".age"
"""What an encrypted file's name ends with; its clear name is the name without it."""
PURPOSE = "backup encryption"
_SECRET_HRP = "age-secret-key-"  # noqa: S105 (the encoding's prefix, not a secret)


class Derives(Protocol):
    """What derives secrets from the key-encryption key: a ``KeySource``, or a ``DataDir``."""

    def derived_key(self, purpose: str) -> bytes: ...


def installation_identity(source: Derives) -> x25519.Identity:
    """The age identity of this installation's backups, derived from the key-encryption key."""
    return identity_of(source.derived_key(PURPOSE))


def identity_of(secret: bytes) -> x25519.Identity:
    """The age identity whose X25519 secret is the 32 bytes ``secret``, written as age writes
    its secret keys."""
    words = bech32.convertbits(secret, 8, 5)
    if words is None:  # convertbits refuses only values over 8 bits, which bytes cannot hold
        raise ValueError("a derived key did not convert to bech32")
    return x25519.Identity.from_str(bech32.bech32_encode(_SECRET_HRP, words).upper())


def recipient(text: str) -> x25519.Recipient:
    """An age X25519 public key (``age1...``), as ``age-keygen`` prints it."""
    try:
        return x25519.Recipient.from_str(text.strip())
    except pyrage.RecipientError:
        raise InvalidArgument(f"{text!r} is not an age public key (age1...)",
                              field="recipient") from None


def identities_in(path: Path) -> list[x25519.Identity]:
    """The identities of an age identity file (``age-keygen -o FILE``): one
    ``AGE-SECRET-KEY-1...`` a line, ``#`` comments and blank lines skipped."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read the identity file {path}: {exc}",
                              field="identity") from None
    out = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise InvalidArgument(f"{path}, line {number}: not an age secret key "
                                  "(AGE-SECRET-KEY-1...)", field="identity") from None
    if not out:
        raise InvalidArgument(f"{path} holds no age identity", field="identity")
    return out


def encrypt(path: Path, recipients: Sequence[x25519.Recipient]) -> Path:
    """Replaces the file ``path`` by ``path.age``, encrypted to ``recipients``; the clear file
    is removed once the encrypted one is on disk."""
    sealed = path.with_name(path.name + SUFFIX)
    pyrage.encrypt_file(str(path), str(sealed), list(recipients))
    fd = os.open(sealed, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    return sealed


def decrypt(sealed: Path, target: Path, identities: Sequence[x25519.Identity]) -> None:
    """Writes the clear content of ``sealed`` to ``target``; FailedPrecondition when no identity
    given opens it, LedgerCorrupt when its content was altered."""
    if not identities:
        raise FailedPrecondition(
            f"the backup is encrypted ({sealed.name}): restoring it needs the key-encryption key "
            "it was taken with (PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE, or --dev) "
            "or an age identity file of one of its recipients (--identity FILE)", field="src")
    try:
        pyrage.decrypt_file(str(sealed), str(target), list(identities))
    except pyrage.DecryptError as exc:
        if "no matching keys" in str(exc).lower():
            raise FailedPrecondition(
                f"{sealed.name} is encrypted to other keys than the ones given (another "
                "key-encryption key, or another recovery identity)", field="src") from None
        raise LedgerCorrupt(f"{sealed.name} does not decrypt: {exc}") from None
