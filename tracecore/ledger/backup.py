"""Backups of one tenant: an online, consistent, compacted copy of its files with a manifest, and
restoring one into a data directory.

A backup is a directory::

    manifest.json       what, when, the chains' heads, and a SHA-256 of every file below
    tenant.pb           the tenant's identity
    keyring.bin         its signing keys, still encrypted under the key-encryption key
    ledger/data.mdb[.age]
                        the ledger, compacted, as of one read transaction
    observations/data.mdb[.age], alerts/..., epcis-rest/..., ...
                        the other LMDB environments of the tenant (scan statistics, alerts,
                        the EPCIS REST binding's capture jobs, named queries, subscriptions
                        and their outbox): not derivable from the ledger (first-verified times
                        feed clone detection), so included unless ``ledger_only``

Taken with the key-encryption key configured, the manifest is signed and every ``data.mdb`` is
stored as ``data.mdb.age``, encrypted (see ``backup_cipher``) to the installation's backup identity
and to any further age recipients, so a stolen backup holds no serial in clear; the manifest
names the recipients and checksums the encrypted files. Restore decrypts with the key-encryption
key or an identity file of a recipient.

The ledger is copied first and the key ring after it: keys are only ever added, so the ring
copied holds every key the copied ledger's codes were minted under. Each environment is copied
in one LMDB read transaction while the services keep writing; the manifest's heads are read
from the copy itself, so they describe exactly what was copied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb
from pyrage import x25519

from tracecore import masterdata
from tracecore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LedgerCorrupt,
    NotFound,
    TraceError,
)
from tracecore.files import fsync_directory, make_private
from tracecore.keys import KeyRing, KeySource
from tracecore.ledger import backup_cipher
from tracecore.ledger import format as ledger_format
from tracecore.ledger.chain import audit_trail, check_chains, event_journal
from tracecore.ledger.code_keys import SINCE_FORMAT, CodeKeys
from tracecore.ledger.env import Env, in_use
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import IDENTITY, KEYRING, LEDGER, OFFLINE, TENANTS

MANIFEST = "manifest.json"
#: HMAC-SHA256 of the manifest's bytes, hex, keyed from the key-encryption key.
SIGNATURE = "manifest.sig"
_SIGNING_PURPOSE = "backup manifest"
FORMAT = "pharmatrace-backup/2"
#: Formats restore reads: the first kept every file in clear.
READABLE = frozenset({"pharmatrace-backup/1", FORMAT})
_DATA = "data.mdb"
_LOCK = "lock.mdb"
_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Manifest:
    """What a backup holds. Hashes are hex; ``files`` maps a path inside the backup to
    ``{"bytes": n, "sha256": hex}``."""

    tenant: str
    created_at_ms: int
    last_event_seq: int
    event_head_hash: str
    audit_seq: int
    audit_head_hash: str
    codes: int
    chains_intact: bool
    environments: list[str]
    files: dict[str, dict[str, int | str]]
    format: str = FORMAT
    encrypted_to: list[str] = field(default_factory=list)
    """The age recipients (public keys) its LMDB files are encrypted to; empty when in clear."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            doc = json.loads(text)
            if doc.get("format") not in READABLE:
                raise InvalidArgument(f"not a {FORMAT} manifest", field="manifest")
            return cls(**doc)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"{MANIFEST} is not a backup manifest: {exc}",
                                  field="manifest") from None


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    manifest: Manifest
    replaced: bool              # a tenant of that name was there and has been replaced
    offline: bool               # it stays offline: it was offline before the restore
    keys_checked: bool          # the key ring was decrypted with the configured key source


def backup(data_root: Path, tenant: str, dest: Path, *, ledger_only: bool = False,
           key_source: KeySource | None = None,
           recipients: Sequence[x25519.Recipient] = ()) -> Manifest:
    """Copies ``tenant`` of the data directory to the new directory ``dest`` (while the
    services keep serving) and returns its manifest. ``dest`` appears only once complete.

    With ``key_source`` the LMDB files are encrypted to the installation's backup identity and
    to ``recipients``, and the manifest (and so every file's checksum) is signed with a key
    derived from the key-encryption key, which restore checks; without it the backup is in
    clear and unsigned."""
    if recipients and key_source is None:
        raise FailedPrecondition("encrypting a backup needs the key-encryption key (set "
                                 "PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE, or pass "
                                 "--dev)", field="recipient")
    source = _tenant_dir(data_root, tenant)
    if not (source / IDENTITY).is_file():
        raise NotFound(f"tenant {tenant} does not exist in this data directory", field="tenant")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AlreadyExists("the backup destination exists and is not empty", field="dest")
    _remove_stale_partials(dest)
    staging = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        environments = [LEDGER] + ([] if ledger_only else _companions(source))
        for name in environments:
            (staging / name).mkdir()
            env = Env(source / name, (), owner=tenant, readonly=True)
            try:
                env.copy_to(staging / name)
            finally:
                env.close()
        # After the ledger, never before: see the module's docstring.
        for name in (KEYRING, IDENTITY):
            _copy_file(source / name, staging / name)
        heads = _heads(staging, tenant, key_source)
        _remove_locks(staging, environments)
        sealed_to: list[str] = []
        if key_source is not None:
            to = [backup_cipher.installation_identity(key_source).to_public(), *recipients]
            for name in environments:
                backup_cipher.encrypt(staging / name / _DATA, to)
            sealed_to = [str(r) for r in to]
        manifest = Manifest(tenant=tenant, created_at_ms=int(time.time() * 1000),
                            environments=environments, files=_checksums(staging),
                            encrypted_to=sealed_to, **asdict(heads))
        text = manifest.to_json().encode()
        _write_durably(staging / MANIFEST, text)
        if key_source is not None:
            _write_durably(staging / SIGNATURE, _signature(text, key_source).encode())
        make_private(staging)
        _fsync_tree(staging)
        if dest.exists():
            dest.rmdir()
        os.rename(staging, dest)
        fsync_directory(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(src: Path) -> Manifest:
    try:
        text = (src / MANIFEST).read_text(encoding="utf-8")
    except OSError:
        raise NotFound(f"no {MANIFEST} in the backup directory", field="src") from None
    return Manifest.from_json(text)


def check_signature(src: Path, key_source: KeySource | None, *, allow_unsigned: bool) -> None:
    """Refuses a backup whose manifest is not signed by this installation's key-encryption key
    (altered, or unsigned unless ``allow_unsigned``): the checksums prove nothing to someone who
    can rewrite them."""
    if allow_unsigned:
        return
    if not (src / SIGNATURE).is_file():
        raise FailedPrecondition(
            f"the backup is not signed ({SIGNATURE} is missing): only a backup taken with the "
            "key-encryption key configured is trusted; pass --allow-unsigned to restore it "
            "anyway", field="src")
    if key_source is None:
        raise FailedPrecondition(
            "checking the backup's signature needs the key-encryption key (set "
            "PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE, or pass --dev)", field="src")
    signed = (src / SIGNATURE).read_bytes().strip()
    expected = _signature((src / MANIFEST).read_bytes(), key_source).encode()
    if not hmac.compare_digest(signed, expected):
        raise LedgerCorrupt(f"the backup's manifest does not match its signature ({SIGNATURE}): "
                            "it was altered, or signed with another key-encryption key")


def _signature(manifest: bytes, key_source: KeySource) -> str:
    return hmac.new(key_source.derived_key(_SIGNING_PURPOSE), manifest, "sha256").hexdigest()


def check_files(src: Path, manifest: Manifest) -> None:
    """Every file the manifest lists is there with its size and SHA-256; LedgerCorrupt names
    the first that is not."""
    for name, expected in sorted(manifest.files.items()):
        path = src / name
        if not path.is_file():
            raise LedgerCorrupt(f"backup of tenant {manifest.tenant}: {name} is missing")
        size, digest = _sha256(path)
        if size != expected["bytes"] or digest != expected["sha256"]:
            raise LedgerCorrupt(f"backup of tenant {manifest.tenant}: {name} does not match "
                                "its checksum in the manifest")


def restore(src: Path, data_root: Path, tenant: str | None = None, *, force: bool = False,
            key_source: KeySource | None = None, allow_unsigned: bool = False,
            identities: Sequence[x25519.Identity] = ()) -> Restored:
    """Restores the backup in ``src`` into the data directory as its tenant (``tenant``, when
    given, must be the backup's). Checks the checksums, the audit trail's and journal's chains
    and heads, and the key ring when ``key_source`` is given, before anything is replaced.
    Encrypted files are opened with the identity derived from ``key_source`` or one of
    ``identities`` (age identities of the backup's further recipients).

    Refuses while any process has the tenant's files open (a server serving it: take the tenant
    offline or stop the server; ``force`` does not override this, since replacing files under a
    process loses what it writes), and refuses to replace an existing tenant without ``force``.
    A tenant that was offline stays offline.
    """
    manifest = read_manifest(src)
    if tenant is not None and tenant != manifest.tenant:
        raise InvalidArgument(f"the backup is of tenant {manifest.tenant}, not {tenant}",
                              field="tenant")
    check_signature(src, key_source, allow_unsigned=allow_unsigned)
    name = manifest.tenant
    check_files(src, manifest)
    target = _tenant_dir(data_root, name)
    live = [d.name for d in _lmdb_dirs(target) if in_use(d)]
    if live:
        raise FailedPrecondition(
            f"tenant {name} is being served ({', '.join(live)} open in a running process): take "
            "it offline (`pharmatrace maintenance offline`) or stop the server first")
    exists = target.exists() and any(target.iterdir())
    if exists and not force:
        raise AlreadyExists(f"tenant {name} exists in this data directory: pass --force to "
                            "replace it", field="tenant")
    offline = (target / OFFLINE).exists()
    tenants = data_root / TENANTS
    tenants.mkdir(parents=True, exist_ok=True)
    staging = tenants / f".restore-{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    openers = [*([backup_cipher.installation_identity(key_source)] if key_source else []),
               *identities]
    try:
        copied = {}
        for relative, expected in manifest.files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            if relative.endswith(backup_cipher.SUFFIX):
                # age authenticates the clear content it writes; the checksum was of the file.
                backup_cipher.decrypt(src / relative,
                                      staging / relative[:-len(backup_cipher.SUFFIX)], openers)
            else:
                _copy_file(src / relative, staging / relative)
                copied[relative] = expected
        check_files(staging, replace(manifest, files=copied))
        _check_restored(staging, manifest, key_source)
        if key_source is not None:
            try:
                KeyRing.load(staging / KEYRING, key_source)
            except TraceError as exc:
                raise type(exc)(f"backup of tenant {name}: {KEYRING}: {exc.message}") from exc
        if offline:
            shutil.copyfile(target / OFFLINE, staging / OFFLINE)
        make_private(staging)
        _fsync_tree(staging)
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Restored(manifest, replaced=exists, offline=offline,
                    keys_checked=key_source is not None)


# -- helpers -------------------------------------------------------------------------------------


def _tenant_dir(data_root: Path, tenant: str) -> Path:
    masterdata.tenant_id(tenant)
    return data_root / TENANTS / tenant


def _lmdb_dirs(tenant_dir: Path) -> list[Path]:
    if not tenant_dir.is_dir():
        return []
    return sorted(d for d in tenant_dir.iterdir()
                  if d.is_dir() and ((d / _DATA).exists() or (d / _LOCK).exists()))


def _companions(tenant_dir: Path) -> list[str]:
    """The tenant's LMDB environments besides its ledger."""
    return [d.name for d in _lmdb_dirs(tenant_dir)
            if d.name != LEDGER and not d.name.startswith(".") and (d / _DATA).is_file()]


@dataclass(frozen=True)
class _Heads:
    """A copied ledger's chain heads, code count and whether both chains verify."""

    last_event_seq: int
    event_head_hash: str
    audit_seq: int
    audit_head_hash: str
    codes: int
    chains_intact: bool


def _heads(directory: Path, tenant: str, key_source: KeySource | None) -> _Heads:
    """The copy's heads; its chains are walked only with the key source when sealed (format 3
    on; a ledger of an earlier format is backed up before it is migrated)."""
    keys = CodeKeys.of(key_source, tenant) if key_source is not None else None
    ledger = Ledger(directory / LEDGER, tenant=tenant, readonly=True, codes=keys)
    try:
        with ledger.env.read() as txn:
            sealed = ledger_format.version_in(ledger, txn) >= SINCE_FORMAT
            event_seq, event_hash = event_journal(ledger.db, None).head(txn)
            audit_seq, audit_hash = audit_trail(ledger.db, None).head(txn)
            # Sealed chains cannot be walked without the key; their heads are still compared.
            intact = (sealed and keys is None) or all(
                check.intact for check in check_chains(txn, ledger.db, keys if sealed else None))
            codes = int(txn.stat(ledger.db["codes"])["entries"])
    finally:
        ledger.close()
    return _Heads(event_seq, event_hash.hex(), audit_seq, audit_hash.hex(), codes, intact)


def _check_restored(staging: Path, manifest: Manifest, key_source: KeySource | None) -> None:
    identity = lpb.TenantRecord.FromString((staging / IDENTITY).read_bytes())
    if identity.tenant != manifest.tenant:
        raise LedgerCorrupt(f"backup of tenant {manifest.tenant}: {IDENTITY} names tenant "
                            f"{identity.tenant}")
    heads = _heads(staging, manifest.tenant, key_source)
    _remove_locks(staging, manifest.environments)
    if not heads.chains_intact:
        raise LedgerCorrupt(f"backup of tenant {manifest.tenant}: the audit trail or the event "
                            "journal does not verify (`pharmatrace doctor` on a copy names the "
                            "record)")
    for key in ("last_event_seq", "event_head_hash", "audit_seq", "audit_head_hash"):
        if getattr(heads, key) != getattr(manifest, key):
            raise LedgerCorrupt(f"backup of tenant {manifest.tenant}: the ledger's {key} is "
                                f"{getattr(heads, key)}, the manifest says "
                                f"{getattr(manifest, key)}")


def _swap(staging: Path, target: Path) -> None:
    """Puts ``staging`` in ``target``'s place; the old directory is removed once it is out."""
    old = target.with_name(f".replaced-{target.name}-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    fsync_directory(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_partials(dest: Path) -> None:
    """Removes what backups to ``dest`` killed part-way left behind (their process is gone)."""
    prefix = f".{dest.name}.partial-"
    if not dest.parent.is_dir():
        return
    for partial in dest.parent.glob(f"{prefix}*"):
        pid = partial.name[len(prefix):]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_locks(directory: Path, environments: list[str]) -> None:
    for name in environments:
        (directory / name / _LOCK).unlink(missing_ok=True)


def _files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path


def _checksums(directory: Path) -> dict[str, dict[str, int | str]]:
    out: dict[str, dict[str, int | str]] = {}
    for path in _files(directory):
        size, digest = _sha256(path)
        out[path.relative_to(directory).as_posix()] = {"bytes": size, "sha256": digest}
    return out


def _sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _copy_file(source: Path, target: Path) -> None:
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError:
        raise NotFound(f"{source.name} is missing", field="tenant") from None


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(directory: Path) -> None:
    for path in _files(directory):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for path in sorted((p for p in directory.rglob("*") if p.is_dir()), reverse=True):
        fsync_directory(path)
    fsync_directory(directory)
