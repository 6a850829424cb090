"""The signing key ring: states and rotation, the encrypted file, and what never leaks."""

from __future__ import annotations

import base64
import hmac
import os
import stat
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from tracecore.errors import FailedPrecondition, InvalidArgument, KeyRingError, NotFound
from tracecore.keys import (
    DEVELOPMENT_PASSPHRASE,
    KEY_FILE_ENV,
    MAX_KEY_ID,
    PASSPHRASE_ENV,
    KeyRing,
    KeySource,
    KeyState,
    SigningKey,
    write_key_file,
)

PASSPHRASE = "correct horse battery staple 马"
HEADER_SIZE = 50
TAG_SIZE = 16
UNDECRYPTABLE = (
    "key ring cannot be decrypted: wrong passphrase or key file, or the file was modified"
)


def _secret(n: int) -> bytes:
    return n.to_bytes(2, "big") * 16


def _key(key_id: int, state: KeyState) -> SigningKey:
    return SigningKey(key_id, state, 1.0, 1.0, _secret(key_id))


def _snapshot(ring: KeyRing) -> list[tuple[int, KeyState, float, float, bytes]]:
    return [(k.key_id, k.state, k.created_at, k.changed_at, k.secret) for k in ring]


def _leak_forms(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        secret.hex().upper(),
        repr(secret)[2:-1],
        secret.decode("latin-1"),
        base64.b64encode(secret).decode(),
    ]


def _flip(blob: bytes, offset: int) -> bytes:
    return blob[:offset] + bytes([blob[offset] ^ 0x01]) + blob[offset + 1 :]


@pytest.fixture(scope="module")
def passphrase_ring(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyRing, bytes]:
    """A ring with all three states, and its file under PASSPHRASE: one scrypt for the module."""
    ring = KeyRing.generate(now=100.0)
    ring.rotate(now=200.0)
    ring.rotate(now=300.0)
    ring.revoke(1, now=400.0)
    path = tmp_path_factory.mktemp("ring") / "keys.ring"
    ring.save(path, KeySource.passphrase(PASSPHRASE))
    return ring, path.read_bytes()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek"
    write_key_file(path)
    return path


# --- the ring ------------------------------------------------------------------------------


def test_generate_makes_one_active_key_with_id_1() -> None:
    """A new ring holds exactly one key: id 1, active, 32 random bytes, given time."""
    ring = KeyRing.generate(now=123.0)
    (key,) = ring.keys()
    assert key is ring.active
    assert (key.key_id, key.state, key.created_at, key.changed_at) == (
        1, KeyState.ACTIVE, 123.0, 123.0
    )
    assert len(key.secret) == 32
    assert KeyRing.generate().active.secret != key.secret


def test_mac_is_hmac_sha256_of_the_secret_and_built_once() -> None:
    """A key's cached Mac is HMAC-SHA256 under its secret, the same object on every access."""
    key = KeyRing.generate().active
    assert key.mac.digest(b"msg") == hmac.digest(key.secret, b"msg", "sha256")
    assert key.mac is key.mac


def test_rotate_retires_the_old_key_and_uses_the_next_id() -> None:
    """Rotation makes id n+1 active and the old active key retired, with the change time."""
    ring = KeyRing.generate(now=1.0)
    new = ring.rotate(now=2.0)
    assert (new.key_id, new.state, new.created_at) == (2, KeyState.ACTIVE, 2.0)
    assert ring.active is new
    old = ring.get(1)
    assert (old.state, old.created_at, old.changed_at) == (KeyState.RETIRED, 1.0, 2.0)
    assert old.secret != new.secret


def test_key_ids_are_never_reused_and_one_key_is_always_active() -> None:
    """Through rotations and revocations each new key takes the next id; one key is active."""
    ring = KeyRing.generate()
    for step in range(12):
        if step % 3 == 0:
            ring.revoke(ring.active.key_id)
        else:
            ring.rotate()
        ids = [k.key_id for k in ring]
        assert ids == list(range(1, step + 3))
        assert ring.active.key_id == ids[-1]
        assert sum(k.state is KeyState.ACTIVE for k in ring) == 1


def test_retiring_the_active_key_is_refused() -> None:
    """The active key is retired only by rotating; retire() on it fails and changes nothing."""
    ring = KeyRing.generate()
    with pytest.raises(FailedPrecondition, match="rotate"):
        ring.retire(1)
    assert ring.active.key_id == 1


def test_retire_is_idempotent_for_a_retired_key_and_refused_for_a_revoked_one() -> None:
    """retire() returns an already retired key unchanged and refuses to un-revoke a key."""
    ring = KeyRing.generate()
    ring.rotate()
    ring.rotate()
    assert ring.retire(1) is ring.get(1)
    ring.revoke(2)
    with pytest.raises(FailedPrecondition, match="revoked"):
        ring.retire(2)
    assert ring.state_of(2) is KeyState.REVOKED


def test_revoking_the_active_key_rotates_first() -> None:
    """Revoking the active key leaves a fresh active key so minting can continue."""
    ring = KeyRing.generate(now=1.0)
    revoked = ring.revoke(1, now=5.0)
    assert (revoked.key_id, revoked.state, revoked.changed_at) == (1, KeyState.REVOKED, 5.0)
    assert (ring.active.key_id, ring.active.created_at) == (2, 5.0)


def test_revoking_a_retired_key_keeps_the_active_one_and_is_idempotent() -> None:
    """Revoking a retired key does not rotate; revoking it again returns the same key."""
    ring = KeyRing.generate()
    ring.rotate()
    first = ring.revoke(1)
    assert ring.active.key_id == 2
    assert ring.revoke(1) is first


def test_revoked_keys_stay_recognisable() -> None:
    """A revoked key keeps its Mac in macs() and reports REVOKED, so its codes get flagged."""
    ring = KeyRing.generate()
    secret = ring.active.secret
    ring.revoke(1)
    assert set(ring.macs()) == {1, 2}
    assert ring.macs()[1].digest(b"x") == hmac.digest(secret, b"x", "sha256")
    assert ring.state_of(1) is KeyState.REVOKED


def test_unknown_key_id_is_not_found() -> None:
    """get, state_of, retire and revoke of an id the ring never had raise NotFound."""
    ring = KeyRing.generate()
    for call in (ring.get, ring.state_of, ring.retire, ring.revoke):
        with pytest.raises(NotFound) as caught:
            call(7)
        assert caught.value.field == "key_id"


def test_rotation_stops_when_key_ids_run_out() -> None:
    """With id 1023 active, rotate and revoke-active fail and leave the ring unchanged."""
    ring = KeyRing([_key(1022, KeyState.RETIRED), _key(MAX_KEY_ID, KeyState.ACTIVE)])
    with pytest.raises(FailedPrecondition, match="key ids"):
        ring.rotate()
    with pytest.raises(FailedPrecondition, match="key ids"):
        ring.revoke(MAX_KEY_ID)
    assert ring.state_of(MAX_KEY_ID) is KeyState.ACTIVE


def test_readers_see_a_consistent_ring_while_it_rotates() -> None:
    """Readers running beside a rotating writer always find one active key with its Mac."""
    ring = KeyRing.generate()
    failures: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            active = ring.active
            if active.state is not KeyState.ACTIVE or active.key_id not in ring.macs():
                failures.append(repr(ring))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    for _ in range(200):
        ring.rotate()
    done.set()
    for reader in readers:
        reader.join()
    assert failures == []
    assert ring.active.key_id == 201


@pytest.mark.parametrize(
    "keys",
    [
        [],
        [_key(1, KeyState.RETIRED)],
        [_key(1, KeyState.ACTIVE), _key(2, KeyState.ACTIVE)],
        [_key(1, KeyState.ACTIVE), _key(1, KeyState.RETIRED)],
    ],
    ids=["empty", "no-active", "two-active", "duplicate-id"],
)
def test_ring_construction_enforces_its_invariants(keys: list[SigningKey]) -> None:
    """A ring needs unique ids and exactly one active key."""
    with pytest.raises(InvalidArgument):
        KeyRing(keys)


@pytest.mark.parametrize(
    ("key_id", "secret", "field"),
    [(0, _secret(0), "key_id"), (1024, _secret(0), "key_id"), (True, _secret(0), "key_id"),
     (1, b"\x00" * 31, "secret"), (1, bytearray(32), "secret")],
)
def test_signing_key_validates_id_and_secret(key_id: int, secret: bytes, field: str) -> None:
    """Key ids are 1..1023 and secrets exactly 32 immutable bytes."""
    with pytest.raises(InvalidArgument) as caught:
        SigningKey(key_id, KeyState.ACTIVE, 0.0, 0.0, secret)
    assert caught.value.field == field


# --- the file ------------------------------------------------------------------------------


def test_round_trip_with_a_passphrase(
    passphrase_ring: tuple[KeyRing, bytes], tmp_path: Path
) -> None:
    """A saved ring loads with every id, state, time and secret, and the same MACs."""
    ring, blob = passphrase_ring
    path = tmp_path / "keys.ring"
    path.write_bytes(blob)
    loaded = KeyRing.load(path, KeySource.passphrase(PASSPHRASE))
    assert _snapshot(loaded) == _snapshot(ring)
    assert [k.state for k in loaded] == [
        KeyState.REVOKED, KeyState.RETIRED, KeyState.ACTIVE
    ]
    assert loaded.macs()[1].digest(b"m") == ring.macs()[1].digest(b"m")


def test_round_trip_with_a_key_file(key_file: Path, tmp_path: Path) -> None:
    """A ring saved under a key file loads with the same key file."""
    ring = KeyRing.generate()
    ring.rotate()
    ring.save(tmp_path / "keys.ring", KeySource.key_file(key_file))
    loaded = KeyRing.load(tmp_path / "keys.ring", KeySource.key_file(key_file))
    assert _snapshot(loaded) == _snapshot(ring)


def test_key_file_may_hold_raw_bytes_or_hex_with_whitespace(tmp_path: Path) -> None:
    """32 raw bytes and 64 hex characters (any case, surrounding whitespace) name one key."""
    raw = bytes(range(32))
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "hex").write_bytes(b"  " + raw.hex().upper().encode() + b"\r\n")
    ring = KeyRing.generate()
    ring.save(tmp_path / "keys.ring", KeySource.key_file(tmp_path / "raw"))
    loaded = KeyRing.load(tmp_path / "keys.ring", KeySource.key_file(tmp_path / "hex"))
    assert _snapshot(loaded) == _snapshot(ring)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x01" * 31, b"\x01" * 33, b"ab" * 31 + b"a", b"ab" * 32 + b"a", b"zz" * 32,
     b"ab" * 16 + b" " + b"ab" * 16, b"\x01" * 5000],
    ids=["empty", "31-bytes", "33-bytes", "63-hex", "65-hex", "not-hex", "inner-space", "huge"],
)
def test_malformed_key_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    """Anything but 32 raw bytes or 64 hex characters is refused, without echoing content."""
    path = tmp_path / "kek"
    path.write_bytes(content)
    with pytest.raises(KeyRingError) as caught:
        KeySource.key_file(path)
    message = str(caught.value)
    assert "key file" in message
    assert str(path) not in message
    assert "abab" not in message


def test_write_key_file_makes_a_0600_hex_file_and_never_overwrites(tmp_path: Path) -> None:
    """A new key file is 64 hex characters and a newline, mode 0600; a second write fails."""
    path = tmp_path / "kek"
    write_key_file(path)
    content = path.read_bytes()
    assert len(content) == 65 and bytes.fromhex(content.decode())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyRingError, match="already exists"):
        write_key_file(path)
    assert path.read_bytes() == content


def test_saved_file_has_the_documented_header(
    passphrase_ring: tuple[KeyRing, bytes], key_file: Path, tmp_path: Path
) -> None:
    """Magic, version 1, KDF id and scrypt n=2**15, r=8, p=1 sit where the format says."""
    _, blob = passphrase_ring
    assert blob[:8] == b"PTKEYRNG"
    assert blob[8:10] == bytes([1, 1])
    assert blob[10:22] == (2**15).to_bytes(4, "big") + (8).to_bytes(4, "big") + bytes([0, 0, 0, 1])
    KeyRing.generate().save(tmp_path / "k.ring", KeySource.key_file(key_file))
    assert (tmp_path / "k.ring").read_bytes()[9:22] == bytes([2]) + bytes(12)


def test_each_save_uses_a_fresh_salt_and_nonce(key_file: Path, tmp_path: Path) -> None:
    """Saving the same ring twice gives different salts, nonces and ciphertexts."""
    ring = KeyRing.generate()
    source = KeySource.key_file(key_file)
    ring.save(tmp_path / "a", source)
    ring.save(tmp_path / "b", source)
    a, b = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
    assert a[22:38] != b[22:38]
    assert a[38:50] != b[38:50]
    assert a[50:] != b[50:]


def test_save_writes_mode_0600_atomically_and_leaves_no_temp_file(
    key_file: Path, tmp_path: Path
) -> None:
    """Saving over a world-readable file leaves one 0600 file holding the new ring."""
    path = tmp_path / "keys.ring"
    path.write_bytes(b"old")
    path.chmod(0o644)
    ring = KeyRing.generate()
    ring.save(path, KeySource.key_file(key_file))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek", "keys.ring"]
    assert _snapshot(KeyRing.load(path, KeySource.key_file(key_file))) == _snapshot(ring)


def test_wrong_passphrase_cannot_decrypt(
    passphrase_ring: tuple[KeyRing, bytes], tmp_path: Path
) -> None:
    """Another passphrase fails with the one clear message."""
    path = tmp_path / "keys.ring"
    path.write_bytes(passphrase_ring[1])
    with pytest.raises(KeyRingError) as caught:
        KeyRing.load(path, KeySource.passphrase(PASSPHRASE + "!"))
    assert str(caught.value) == UNDECRYPTABLE


def test_wrong_key_file_cannot_decrypt(key_file: Path, tmp_path: Path) -> None:
    """Another key file fails with the same clear message."""
    KeyRing.generate().save(tmp_path / "keys.ring", KeySource.key_file(key_file))
    other = tmp_path / "other"
    write_key_file(other)
    with pytest.raises(KeyRingError) as caught:
        KeyRing.load(tmp_path / "keys.ring", KeySource.key_file(other))
    assert str(caught.value) == UNDECRYPTABLE


def test_key_kind_mismatch_is_named(
    passphrase_ring: tuple[KeyRing, bytes], key_file: Path, tmp_path: Path
) -> None:
    """A passphrase ring opened with a key file (and back) says which kind it needs."""
    path = tmp_path / "keys.ring"
    path.write_bytes(passphrase_ring[1])
    with pytest.raises(KeyRingError, match="protected by a passphrase but a key file"):
        KeyRing.load(path, KeySource.key_file(key_file))
    KeyRing.generate().save(path, KeySource.key_file(key_file))
    with pytest.raises(KeyRingError, match="protected by a key file but a passphrase"):
        KeyRing.load(path, KeySource.passphrase(PASSPHRASE))


REGIONS = {
    "magic": 0, "version": 8, "kdf-id": 9, "scrypt-n": 12, "scrypt-r": 17, "scrypt-p": 21,
    "salt": 30, "nonce": 44, "ciphertext-first": 50, "ciphertext-middle": 120,
    "ciphertext-last": -17, "tag-first": -16, "tag-last": -1,
}


@pytest.mark.parametrize("offset", REGIONS.values(), ids=REGIONS.keys())
def test_a_flipped_byte_in_any_region_fails(
    passphrase_ring: tuple[KeyRing, bytes], tmp_path: Path, offset: int
) -> None:
    """One flipped bit in the header, salt, nonce, ciphertext or tag is a KeyRingError."""
    blob = passphrase_ring[1]
    path = tmp_path / "keys.ring"
    path.write_bytes(_flip(blob, offset % len(blob)))
    with pytest.raises(KeyRingError):
        KeyRing.load(path, KeySource.passphrase(PASSPHRASE))


def test_every_single_flipped_byte_fails(key_file: Path, tmp_path: Path) -> None:
    """Flipping any one byte of the file, first to last, is a KeyRingError (fast KDF)."""
    source = KeySource.key_file(key_file)
    path = tmp_path / "keys.ring"
    KeyRing.generate().save(path, source)
    blob = path.read_bytes()
    for offset in range(len(blob)):
        path.write_bytes(_flip(blob, offset))
        with pytest.raises(KeyRingError):
            KeyRing.load(path, source)


@pytest.mark.parametrize(
    "length", [0, 7, HEADER_SIZE, HEADER_SIZE + TAG_SIZE - 1, HEADER_SIZE + TAG_SIZE, -1]
)
def test_truncated_file_fails(key_file: Path, tmp_path: Path, length: int) -> None:
    """A file cut anywhere, from empty to one byte short, is a KeyRingError."""
    source = KeySource.key_file(key_file)
    path = tmp_path / "keys.ring"
    KeyRing.generate().save(path, source)
    path.write_bytes(path.read_bytes()[:length])
    with pytest.raises(KeyRingError):
        KeyRing.load(path, source)


def test_appended_bytes_fail(key_file: Path, tmp_path: Path) -> None:
    """Bytes added after the tag are a modification too."""
    source = KeySource.key_file(key_file)
    path = tmp_path / "keys.ring"
    KeyRing.generate().save(path, source)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(KeyRingError, match="cannot be decrypted"):
        KeyRing.load(path, source)


def test_costly_scrypt_parameters_are_refused_before_deriving(
    passphrase_ring: tuple[KeyRing, bytes], tmp_path: Path
) -> None:
    """A header asking for n=2**30 fails at once instead of allocating gigabytes."""
    blob = passphrase_ring[1]
    path = tmp_path / "keys.ring"
    path.write_bytes(blob[:10] + (2**30).to_bytes(4, "big") + blob[14:])
    with pytest.raises(KeyRingError, match="limit"):
        KeyRing.load(path, KeySource.passphrase(PASSPHRASE))


def test_missing_file_is_a_key_ring_error_without_the_path(tmp_path: Path) -> None:
    """Reading an absent ring or key file fails without naming the path."""
    path = tmp_path / "secret-dir" / "keys.ring"
    with pytest.raises(KeyRingError) as ring_error:
        KeyRing.load(path, KeySource.dev())
    with pytest.raises(KeyRingError) as file_error:
        KeySource.key_file(path)
    for caught in (ring_error, file_error):
        assert "secret-dir" not in str(caught.value)
        assert "No such file" in str(caught.value)


# --- what never leaks ----------------------------------------------------------------------


def test_repr_and_str_never_show_secret_bytes() -> None:
    """Keys, rings and sources print ids and states, never secrets or passphrases."""
    ring = KeyRing.generate()
    ring.rotate()
    ring.revoke(1)
    texts = [repr(ring), str(ring), repr(ring.keys()), str(ring.macs())]
    texts += [repr(k) for k in ring] + [str(k) for k in ring]
    for key in ring:
        for text in texts:
            for form in _leak_forms(key.secret):
                assert form not in text
    assert repr(ring) == "KeyRing(active=2, keys=[1:revoked, 2:active])"
    assert PASSPHRASE not in repr(KeySource.passphrase(PASSPHRASE))
    assert repr(KeySource.passphrase(PASSPHRASE)) == "KeySource(passphrase)"


def test_errors_never_carry_secrets_passphrases_or_paths(
    passphrase_ring: tuple[KeyRing, bytes], key_file: Path, tmp_path: Path
) -> None:
    """Every failure's message, repr and formatted traceback is free of key material."""
    ring, blob = passphrase_ring
    kek = bytes.fromhex(key_file.read_text())
    ring_path = tmp_path / "keys.ring"
    bad_kek = tmp_path / "bad-kek"
    bad_kek.write_text(ring.active.secret.hex()[:63])

    def wrong_passphrase() -> None:
        ring_path.write_bytes(blob)
        KeyRing.load(ring_path, KeySource.passphrase("wrong " + PASSPHRASE))

    def flipped_tag() -> None:
        KeyRing.generate().save(ring_path, KeySource.key_file(key_file))
        ring_path.write_bytes(_flip(ring_path.read_bytes(), -1))
        KeyRing.load(ring_path, KeySource.key_file(key_file))

    def malformed_key_file() -> None:
        KeySource.key_file(bad_kek)

    def unwritable() -> None:
        ring.save(tmp_path / "missing-dir" / "keys.ring", KeySource.key_file(key_file))

    failures: list[Callable[[], object]] = [
        wrong_passphrase, flipped_tag, malformed_key_file, unwritable,
        lambda: ring.get(999), lambda: ring.retire(ring.active.key_id),
    ]
    forbidden = [PASSPHRASE, str(tmp_path), str(key_file)]
    for key in ring:
        forbidden += _leak_forms(key.secret)
    forbidden += _leak_forms(kek)
    forbidden.append(ring.active.secret.hex()[:16])
    for failure in failures:
        with pytest.raises((KeyRingError, NotFound, FailedPrecondition)) as caught:
            failure()
        exc = caught.value
        texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        for text in texts:
            for form in forbidden:
                assert form not in text, failure


# --- where the key comes from ----------------------------------------------------------------


def test_from_env_reads_the_passphrase_variable(
    passphrase_ring: tuple[KeyRing, bytes], tmp_path: Path
) -> None:
    """PHARMATRACE_KEY_PASSPHRASE opens a ring saved under that passphrase."""
    path = tmp_path / "keys.ring"
    path.write_bytes(passphrase_ring[1])
    source = KeySource.from_env({PASSPHRASE_ENV: PASSPHRASE})
    assert _snapshot(KeyRing.load(path, source)) == _snapshot(passphrase_ring[0])


def test_from_env_reads_the_key_file_variable(key_file: Path, tmp_path: Path) -> None:
    """PHARMATRACE_KEY_FILE names a key file that opens a ring saved under it."""
    ring = KeyRing.generate()
    ring.save(tmp_path / "keys.ring", KeySource.key_file(key_file))
    source = KeySource.from_env({KEY_FILE_ENV: os.fspath(key_file)})
    assert _snapshot(KeyRing.load(tmp_path / "keys.ring", source)) == _snapshot(ring)


@pytest.mark.parametrize(
    "environ", [{}, {PASSPHRASE_ENV: "", KEY_FILE_ENV: ""}, {"HOME": "/root"}]
)
def test_from_env_without_either_variable_is_a_clear_error(environ: dict[str, str]) -> None:
    """With neither variable set (or both empty) the error names both variables."""
    with pytest.raises(KeyRingError) as caught:
        KeySource.from_env(environ)
    assert PASSPHRASE_ENV in str(caught.value)
    assert KEY_FILE_ENV in str(caught.value)


def test_from_env_with_both_variables_is_refused(key_file: Path) -> None:
    """Setting both variables is ambiguous and refused."""
    with pytest.raises(KeyRingError, match="only one"):
        KeySource.from_env({PASSPHRASE_ENV: PASSPHRASE, KEY_FILE_ENV: os.fspath(key_file)})


def test_empty_passphrase_is_refused() -> None:
    """An empty passphrase protects nothing and is refused."""
    with pytest.raises(KeyRingError, match="empty"):
        KeySource.passphrase(b"")


def test_development_source_is_flagged_however_it_is_supplied() -> None:
    """dev() and the development passphrase given any other way report is_development."""
    assert KeySource.dev().is_development
    assert KeySource.from_env({PASSPHRASE_ENV: DEVELOPMENT_PASSPHRASE}).is_development
    assert repr(KeySource.dev()) == "KeySource(development passphrase)"
    assert not KeySource.passphrase(PASSPHRASE).is_development


def test_passphrase_text_is_unicode_normalised(tmp_path: Path) -> None:
    """Composed and decomposed spellings of one passphrase open the same ring."""
    ring = KeyRing.generate()
    ring.save(tmp_path / "keys.ring", KeySource.passphrase("caf\u00e9-密码"))
    loaded = KeyRing.load(tmp_path / "keys.ring", KeySource.passphrase("cafe\u0301-密码"))
    assert _snapshot(loaded) == _snapshot(ring)
