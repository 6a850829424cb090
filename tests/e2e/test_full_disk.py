"""A full data disk: the tenant that filled it is told so, everything else keeps serving.

The data directory is a small tmpfs mounted for the test (root only); a pool request larger than
the disk fills it.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Servers, run_cli

GTIN = "09501101530003"
LOT = "LOT-FULL"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB filesystem as the data directory (its parent, holding logs, is not on it),
    unmounted at the end."""
    mount = tmp_path / "run" / "data"
    mount.mkdir(parents=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("mounting a small filesystem needs root (mount -t tmpfs)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _setup(servers: Servers, data: Path, tenants: list[str]):  # type: ignore[no-untyped-def]
    server = servers.start(data, workers=1)
    for tenant in tenants:
        for args in (["tenant", "create", tenant, "--name", tenant.title()],
                     ["product", "add", "--tenant", tenant, "--gtin", GTIN, "--name", "Pack"],
                     ["batch", "add", "--tenant", tenant, "--product", GTIN, "--lot", LOT,
                      "--expires", "2031-01-01"]):
            result = run_cli(args, env=server.env, cwd=data.parent)
            assert result.returncode == 0, result.stderr
    return server


def _request(server, tenant: str, count: int, out: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return run_cli(["codes", "request", "--tenant", tenant, "--product", GTIN, "--lot", LOT,
                    "--count", str(count), "--request-id", uuid.uuid4().hex, "--out", str(out),
                    "--quiet"], env=server.env, cwd=out.parent)


def test_filling_the_disk_answers_resource_exhausted_and_reads_keep_serving(
        servers: Servers, small_disk: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool that fills the disk answers RESOURCE_EXHAUSTED naming the tenant; the server lives,
    verifies earlier codes, serves master data, restarts on the full disk and stops on SIGTERM."""
    monkeypatch.setenv("PHARMATRACE_MAX_MAP_SIZE", "1GiB")  # no quota: the disk itself fills
    data = small_disk
    server = _setup(servers, data, ["fill", "other"])
    early = tmp_path / "early.txt"
    assert _request(server, "other", 5, early).returncode == 0
    full = _request(server, "fill", 300_000, tmp_path / "big.txt")
    assert full.returncode != 0
    assert "RESOURCE_EXHAUSTED" in full.stderr and "'fill'" in full.stderr, full.stderr
    assert "free space" in full.stderr
    for _ in range(3):  # several reads: none may kill the server or a worker
        verified = run_cli(["verify", "--tenant", "other", "--file", str(early)],
                           env=server.env, cwd=tmp_path)
        assert verified.stdout.count("GENUINE") == 5, verified.stderr
    listed = run_cli(["product", "list", "--tenant", "fill"], env=server.env, cwd=tmp_path)
    assert GTIN in listed.stdout, listed.stderr
    assert server.process.poll() is None
    assert "exited with" not in server.log_text()
    assert server.terminate() == 0

    again = servers.start(data, workers=1)
    verified = run_cli(["verify", "--tenant", "other", "--file", str(early)], env=again.env,
                       cwd=tmp_path)
    assert verified.stdout.count("GENUINE") == 5, verified.stderr + again.log_text()
    assert again.terminate() == 0


def test_a_tenant_at_its_default_limit_leaves_room_for_the_others(
        servers: Servers, small_disk: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a configured limit one tenant may take a quarter of the disk: its big pool is
    refused naming its limit and how to raise it, and another tenant still gets codes."""
    monkeypatch.delenv("PHARMATRACE_MAX_MAP_SIZE", raising=False)
    server = _setup(servers, small_disk, ["greedy", "modest"])
    refused = _request(server, "greedy", 300_000, tmp_path / "big.txt")
    assert "RESOURCE_EXHAUSTED" in refused.stderr and "'greedy'" in refused.stderr
    assert "ledger-limit" in refused.stderr
    served = _request(server, "modest", 50, tmp_path / "modest.txt")
    assert served.returncode == 0, served.stderr
    assert len((tmp_path / "modest.txt").read_text().split()) == 50
