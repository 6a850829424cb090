"""Sealed print jobs: only the line's key opens them, and any change to one is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracecore.printing import seal
from tracecore.printing.seal import KeyPair, PublicKeys, SealRefused

LINE = KeyPair.generate()
ISSUER = KeyPair.generate()


def _sealed(tmp_path: Path, data: bytes, to: KeyPair = LINE, by: KeyPair = ISSUER) -> Path:
    path = tmp_path / "job.sealed"
    path.write_bytes(seal.seal_bytes(data, to.public(), by))
    return path


def _opened(path: Path, key: KeyPair = LINE, signer: PublicKeys | None = None) -> bytes:
    return b"".join(seal.unseal(path, key, signer))


@pytest.mark.parametrize("size", [0, 1, seal.CHUNK - 1, seal.CHUNK, 2 * seal.CHUNK + 7],
                         ids=["empty", "one-byte", "chunk-less-one", "one-chunk", "three-chunks"])
def test_the_line_key_opens_what_was_sealed_to_it(tmp_path: Path, size: int) -> None:
    """Unsealing gives back exactly the job's bytes, whatever its size."""
    data = os.urandom(size)
    assert _opened(_sealed(tmp_path, data), signer=ISSUER.public()) == data


def test_the_sealed_file_does_not_hold_the_codes_in_clear(tmp_path: Path) -> None:
    """Codes travel and rest encrypted: none of the job's text is in the sealed file."""
    data = b"(01)09501101530003(21)0A1B2C3D4E5F6G7H8J9K\n" * 100
    assert b"0A1B2C3D4E5F" not in _sealed(tmp_path, data).read_bytes()


def test_another_line_key_is_refused_naming_both_keys(tmp_path: Path) -> None:
    """A job sealed to line A is refused by line B, with both keys' fingerprints."""
    other = KeyPair.generate()
    with pytest.raises(SealRefused, match="sealed to another line key") as refused:
        _opened(_sealed(tmp_path, b"job"), key=other)
    assert LINE.public().fingerprint in str(refused.value)
    assert other.public().fingerprint in str(refused.value)


def test_a_job_signed_by_another_issuer_is_refused_when_the_signer_is_pinned(
        tmp_path: Path) -> None:
    """Anyone may seal to a line's public key: a pinned signer keeps their jobs out."""
    stranger = KeyPair.generate()
    with pytest.raises(SealRefused, match="signed by another issuer"):
        _opened(_sealed(tmp_path, b"job", by=stranger), signer=ISSUER.public())


@pytest.mark.parametrize("where", ["header", "first-chunk", "last-byte-of-body", "signature"])
def test_a_job_changed_anywhere_is_refused(tmp_path: Path, where: str) -> None:
    """Flipping one bit in the header's keys, the ciphertext or the signature is refused."""
    path = _sealed(tmp_path, os.urandom(3000))
    data = bytearray(path.read_bytes())
    offset = {"header": len(seal.MAGIC) + 40, "first-chunk": 200,
              "last-byte-of-body": len(data) - 65, "signature": len(data) - 1}[where]
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SealRefused, match=r"changed|damaged"):
        _opened(path)


def test_a_truncated_job_or_another_file_is_refused(tmp_path: Path) -> None:
    """A cut-off job, and a file that is no sealed job at all, are refused."""
    path = _sealed(tmp_path, os.urandom(5000))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SealRefused, match="changed"):
        _opened(path)
    path.write_bytes(b"^XA^FDhello^FS^XZ\n")
    with pytest.raises(SealRefused, match="not a sealed"):
        _opened(path)


def test_key_files_round_trip_and_can_be_encrypted_at_rest() -> None:
    """A key pair written as PEM (with or without passphrase) reads back as the same keys."""
    pem = LINE.to_pem(b"correct horse")
    assert b"ENCRYPTED" in pem
    again = KeyPair.from_pem(pem, b"correct horse")
    assert again.public().fingerprint == LINE.public().fingerprint
    assert PublicKeys.from_pem(LINE.public().to_pem()).fingerprint == LINE.public().fingerprint
    with pytest.raises(Exception, match="key"):
        KeyPair.from_pem(pem, b"wrong")


def test_a_derived_signing_key_is_the_same_in_every_process_and_its_own_per_name(
    tmp_path: Path,
) -> None:
    """The same secret and name derive the same keys (every worker signs alike); another
    tenant's name or another secret derives another key, whose jobs a pinned signer refuses."""
    secret = os.urandom(32)
    acme = KeyPair.derive(secret, "acme")
    assert acme.public().to_pem() == KeyPair.derive(secret, "acme").public().to_pem()
    fingerprints = {k.public().signer_fingerprint for k in (
        acme, KeyPair.derive(secret, "globex"), KeyPair.derive(os.urandom(32), "acme"))}
    assert len(fingerprints) == 3
    path = _sealed(tmp_path, b"labels", by=acme)
    assert _opened(path, signer=KeyPair.derive(secret, "acme").public()) == b"labels"
    with pytest.raises(SealRefused, match="another issuer"):
        _opened(path, signer=KeyPair.derive(secret, "globex").public())
