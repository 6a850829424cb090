"""The service unit and the container image: what an operator installs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import pharmatrace_command

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).parent.parent.parent
UNIT = ROOT / "packaging" / "pharmatrace.service"
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_systemd_unit_is_valid_and_hardened() -> None:
    """systemd finds nothing wrong with the unit but the program not being installed here, and
    rates its exposure OK or better."""
    verify = _run("systemd-analyze", "verify", str(UNIT))
    problems = [line for line in verify.stderr.splitlines()
                if line.strip() and "is not executable" not in line]
    assert not problems, verify.stderr
    security = _run("systemd-analyze", "security", "--offline=yes", str(UNIT))
    level = [line for line in security.stdout.splitlines() if "Overall exposure" in line]
    assert level and any(word in level[0] for word in (" OK", " SAFE")), security.stdout


def test_the_example_configuration_is_valid(tmp_path: Path) -> None:
    """The configuration files shipped for systemd and the image pass `config check`."""
    for name in ("pharmatrace.toml", "container.toml"):
        result = subprocess.run([*pharmatrace_command(), "config", "check",
                                 str(ROOT / "packaging" / name)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr


@pytest.fixture
def podman() -> Iterator[str]:
    """A tag for the image; skips where podman or the base image (tests never pull) is missing,
    and removes the image afterwards."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if _run("podman", "image", "exists", BASE_IMAGE).returncode != 0:
        pytest.skip(f"the base image {BASE_IMAGE} is not in podman's storage (tests do not pull:"
                    f" `podman pull {BASE_IMAGE}` first)")
    tag = f"localhost/pharmatrace-test:{uuid.uuid4().hex[:8]}"
    yield tag
    _run("podman", "rmi", "-f", tag)


def test_the_image_builds_runs_as_non_root_and_reports_healthy(podman: str,
                                                                tmp_path: Path) -> None:
    """`podman build` makes an image that runs as a non-root user, serves with TLS from mounted
    certificates and a passphrase secret, and whose health check reports healthy."""
    built = _run("podman", "build", "--pull=never", "-t", podman, "-f",
                 str(ROOT / "Containerfile"), str(ROOT), timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    user = _run("podman", "image", "inspect", "--format", "{{.Config.User}}", podman)
    assert user.stdout.strip() == "10001:10001"
    tls = tmp_path / "tls"
    subprocess.run([*pharmatrace_command(), "certs", "init", str(tls)], check=True,
                   capture_output=True, timeout=60)
    for path in tls.iterdir():
        path.chmod(0o644)
    name = f"pt-{uuid.uuid4().hex[:8]}"
    secret = f"{name}-kek"
    (tmp_path / "kek").write_text("a passphrase for the test image\n")
    assert _run("podman", "secret", "create", secret, str(tmp_path / "kek")).returncode == 0
    try:
        started = _run("podman", "run", "-d", "--name", name,
                       "--secret", f"{secret},target=kek-passphrase",
                       "-v", f"{tls}:/etc/pharmatrace/tls:ro,Z",
                       "-p", "127.0.0.1::50051", "-p", "127.0.0.1::50052", podman)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 120
        while _run("podman", "healthcheck", "run", name).returncode != 0:
            state = json.loads(_run("podman", "inspect", name).stdout)[0]["State"]
            assert state["Running"], _run("podman", "logs", name).stderr
            assert time.monotonic() < deadline, _run("podman", "logs", name).stderr
            time.sleep(1)
        ports = {p.split("/")[0]: line.rsplit(":", 1)[1]
                 for line in _run("podman", "port", name).stdout.splitlines()
                 for p in [line.split(" -> ")[0]]}
        health = subprocess.run(
            [*pharmatrace_command(), "health", "--ca", str(tls / "ca.pem"), "--issue-addr",
             f"127.0.0.1:{ports['50051']}", "--verify-addr", f"127.0.0.1:{ports['50052']}"],
            capture_output=True, text=True, timeout=60, check=False)
        assert health.stdout.count(": SERVING") == 2, health.stdout + health.stderr
    finally:
        _run("podman", "rm", "-f", name)
        _run("podman", "secret", "rm", secret)
