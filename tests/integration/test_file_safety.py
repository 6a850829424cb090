"""Files on disk: private to their owner whatever the umask, and no partial backups left behind."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracecore.errors import FailedPrecondition, LedgerCorrupt
from tracecore.keys import KeySource
from tracecore.ledger.backup import backup, restore
from tracecore.ledger.tenants import DataDir


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The careless default: umask 022, so new files are world-readable unless made private."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _readable_by_others(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in [root, *root.rglob("*")]
            if stat.S_IMODE(p.stat().st_mode) & 0o077]


def _data_dir(root: Path) -> DataDir:
    data = DataDir(root, KeySource.dev())
    data.create("acme", "Acme Pharma", 1)
    data.close()
    return data


def test_a_backup_and_its_restore_are_private_to_the_owner_under_umask_022(
        tmp_path: Path, open_umask: None) -> None:
    """Under umask 022 a backup (its ledger, key ring, manifest) is 0700/0600, and so is the
    tenant a restore writes, key ring included."""
    _data_dir(tmp_path / "data")
    backup(tmp_path / "data", "acme", tmp_path / "backup", key_source=KeySource.dev())
    assert _readable_by_others(tmp_path / "backup") == []
    assert stat.S_IMODE((tmp_path / "backup" / "keyring.bin").stat().st_mode) == 0o600
    restore(tmp_path / "backup", tmp_path / "restored", key_source=KeySource.dev())
    tenant = tmp_path / "restored" / "tenants" / "acme"
    assert _readable_by_others(tenant) == []
    assert stat.S_IMODE((tenant / "ledger" / "data.mdb").stat().st_mode) == 0o600


def test_serving_makes_an_existing_world_readable_data_directory_private(
        tmp_path: Path, open_umask: None) -> None:
    """A data directory made world-readable (an older version, a careless copy) is 0700/0600
    once `serve` has started on it; `serve --dev` on a non-loopback address refuses to start."""
    data = tmp_path / "data"
    _data_dir(data)
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    script = Path(sys.executable).parent / "pharmatrace"
    # --dev on a public address is refused (authentication is off) before anything is served.
    refused = subprocess.run([str(script), "serve", "--dev", "--insecure", "--host", "0.0.0.0",
                              "--data", str(data)], capture_output=True, text=True, check=False,
                             timeout=60)
    assert refused.returncode != 0 and "loopback" in refused.stderr
    ready = tmp_path / "ready.json"
    served = subprocess.Popen(
        [str(script), "serve", "--dev", "--insecure", "--data", str(data), "--issue-port", "0",
         "--verify-port", "0", "--metrics-port", "0", "--http-port", "-1", "--workers", "1",
         "--grace", "1", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and served.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), served.stderr.read() if served.stderr else ""
    finally:
        served.terminate()
        served.wait(60)
    assert _readable_by_others(data) == []


def test_a_backup_killed_part_way_leaves_nothing_once_the_next_backup_runs(
        tmp_path: Path) -> None:
    """The partial directory a killed backup left (its process gone) is removed by the next
    backup to the same place, which completes."""
    _data_dir(tmp_path / "data")
    dead = subprocess.Popen(["true"])
    dead.wait()
    partial = tmp_path / f".backup.partial-{dead.pid}"
    (partial / "ledger").mkdir(parents=True)
    (partial / "ledger" / "data.mdb").write_bytes(b"\0" * 4096)
    backup(tmp_path / "data", "acme", tmp_path / "backup")
    assert not partial.exists()
    assert (tmp_path / "backup" / "manifest.json").is_file()


def _alter_ledger_and_recompute_checksum(backup_dir: Path) -> None:
    """What a file-level attacker can do: change the ledger and fix the manifest's checksum."""
    ledger = backup_dir / "ledger" / "data.mdb.age"
    blob = bytearray(ledger.read_bytes())
    blob[-1] ^= 0xFF
    ledger.write_bytes(bytes(blob))
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    manifest["files"]["ledger/data.mdb.age"]["sha256"] = hashlib.sha256(blob).hexdigest()
    (backup_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def test_restore_refuses_a_backup_altered_with_its_checksums_recomputed(tmp_path: Path) -> None:
    """A backup whose ledger was changed and whose manifest checksum was recomputed is refused:
    the manifest's signature, keyed from the key-encryption key, no longer matches."""
    _data_dir(tmp_path / "data")
    backup(tmp_path / "data", "acme", tmp_path / "backup", key_source=KeySource.dev())
    _alter_ledger_and_recompute_checksum(tmp_path / "backup")
    with pytest.raises(LedgerCorrupt, match="signature"):
        restore(tmp_path / "backup", tmp_path / "restored", key_source=KeySource.dev())
    assert not (tmp_path / "restored" / "tenants" / "acme").exists()


def test_restore_refuses_an_unsigned_backup_unless_allowed(tmp_path: Path) -> None:
    """A backup without a signature (its signature file deleted, or taken with no key) is
    refused, naming --allow-unsigned, and restored when that is given."""
    _data_dir(tmp_path / "data")
    backup(tmp_path / "data", "acme", tmp_path / "backup", key_source=KeySource.dev())
    (tmp_path / "backup" / "manifest.sig").unlink()
    with pytest.raises(FailedPrecondition, match="allow-unsigned"):
        restore(tmp_path / "backup", tmp_path / "restored", key_source=KeySource.dev())
    done = restore(tmp_path / "backup", tmp_path / "restored", key_source=KeySource.dev(),
                   allow_unsigned=True)
    assert done.manifest.tenant == "acme"
