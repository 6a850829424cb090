"""`pharmatrace serve` as a real process tree, and the `pharmatrace` command run against it.

Every server runs in its own session (process group), so a test can kill it with everything it
started, as a crash would; every server still running at teardown is killed the same way.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import kill, stop

#: Generous bounds for a slow CI machine; a healthy run takes a fraction of them.
START_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 120.0


def pharmatrace_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m pharmatrace_cli``."""
    script = Path(sys.executable).parent / "pharmatrace"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pharmatrace_cli"]


def on_a_terminal(args: Sequence[str], env: dict[str, str]) -> tuple[int, str]:
    """``pharmatrace args`` with its stderr on a pseudo-terminal (what a person at a terminal
    sees: progress bars are drawn only there): its exit status and everything it drew."""
    primary, secondary = pty.openpty()
    with subprocess.Popen([*pharmatrace_command(), *args],
                          env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=secondary) as process:
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed with the process
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        status = process.wait(CLI_TIMEOUT_S)
    os.close(primary)
    return status, seen.decode("utf-8", errors="replace")


@dataclass
class Server:
    """One running `pharmatrace serve --dev --insecure`: its process, data and bound ports."""

    process: subprocess.Popen[bytes]
    data: Path
    log: Path
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def issue_addr(self) -> str:
        return f"127.0.0.1:{self.ports['issue']}"

    @property
    def verify_addr(self) -> str:
        return f"127.0.0.1:{self.ports['verify']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}/metrics"

    @property
    def env(self) -> dict[str, str]:
        """The environment a client command needs to reach this server."""
        return {**os.environ, "PHARMATRACE_ISSUE_ADDR": self.issue_addr,
                "PHARMATRACE_VERIFY_ADDR": self.verify_addr, "PYTHONUNBUFFERED": "1"}

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a power cut would leave things."""
        kill(self.process)

    def terminate(self) -> int:
        """SIGTERM to the serve process alone, as a service manager stops it; its exit code
        (the test fails, the process killed, when it does not exit)."""
        return stop(self.process, f"pharmatrace serve on {self.data}")

    def group_alive(self) -> bool:
        """Whether any process the server started (itself, workers, helpers) is still there."""
        return group_alive(self.process.pid)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_server(data: Path, *, workers: int = 2, extra: Sequence[str] = ()) -> Server:
    """Starts `pharmatrace serve` on ports the system picks and waits for its ready file."""
    data.mkdir(parents=True, exist_ok=True)
    run = data.parent / f"serve-{uuid.uuid4().hex[:8]}"
    ready, log = run.with_suffix(".ready.json"), run.with_suffix(".log")
    command = [*pharmatrace_command(), "serve", "--dev", "--insecure", "--data", str(data),
               "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0",
               "--http-port", "0", "--workers", str(workers), "--grace", "2",
               "--ready-file", str(ready), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(process, data, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{server.log_text()}")
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError(f"serve was not ready in {START_TIMEOUT_S} s:\n"
                                 f"{server.log_text()}")
        time.sleep(0.05)
    server.ports = json.loads(ready.read_text())
    return server


class Servers:
    """Starts servers and kills, at teardown, every one still running."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._started: list[Server] = []

    def start(self, data: Path | None = None, *, workers: int = 2,
              extra: Sequence[str] = ()) -> Server:
        server = start_server(data or self._root / f"data-{len(self._started)}", workers=workers,
                              extra=extra)
        self._started.append(server)
        return server

    def close(self) -> None:
        for server in self._started:
            server.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """``servers.start(data=None)``: a new `pharmatrace serve`, killed at the end of the test."""
    started = Servers(tmp_path)
    yield started
    started.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `pharmatrace serve --dev` shared by a module's tests (each uses its own tenant)."""
    started = Servers(tmp_path_factory.mktemp("serve"))
    yield started.start()
    started.close()


@dataclass(frozen=True)
class Cli:
    """Runs `pharmatrace` commands against one server."""

    server: Server
    cwd: Path

    def __call__(self, *args: str, input: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(args, env=env or self.server.env, cwd=self.cwd, input=input)

    def ok(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs the command and requires exit code 0."""
        result = self(*args, input=input)
        assert result.returncode == 0, (
            f"pharmatrace {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result


def run_cli(args: Sequence[str], *, env: dict[str, str], cwd: Path,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*pharmatrace_command(), *args], env=env, cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)


@pytest.fixture(scope="session")
def pharmatrace() -> list[str]:
    """The command that runs `pharmatrace`."""
    return pharmatrace_command()


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    """``cli(*args)``: a `pharmatrace` command against the module's server, in tmp_path."""
    return Cli(server, tmp_path)


from tests.e2e.nats_server import nats_server  # noqa: E402,F401  (a fixture for the replication tests)
