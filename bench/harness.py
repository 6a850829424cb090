"""The servers a benchmark runs: a real server in its own process group, and its work directory.

Every server a benchmark starts is a subprocess in a new session listening on 127.0.0.1 with its
data in a temporary directory; its whole process group is killed when the benchmark ends, however
it ends. ``bench.measure`` reads what the processes use, ``bench.report`` reports the figures.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
#: The same limits as pharmatrace_cli's clients: a 65,536-code chunk or a 100,000-code batch fits.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
DEV_TENANT = "demo"
"""`serve --dev` creates this tenant with development keys."""

_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0
_live: set[ServerProcess] = set()


# -- processes -----------------------------------------------------------------------------------


class ServerProcess:
    """A command that writes a ready file once serving, run in its own process group.

    ``ports`` is the ready file's JSON. ``stop`` sends SIGTERM to the group, then SIGKILL to what
    is left of it; it is also run at interpreter exit for anything still alive.
    """

    def __init__(self, argv: Sequence[str], workdir: Path, name: str,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._env = {**os.environ, **env} if env else None
        self.ready_file = workdir / f"{name}.ready.json"
        self.log_path = workdir / f"{name}.log"
        self._argv = [*argv, "--ready-file", str(self.ready_file)]
        self._process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> ServerProcess:
        self.ready_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._argv, cwd=ROOT, env=self._env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _live.add(self)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {self._process.returncode} before "
                                   f"it was ready:\n{self.log_tail()}")
            if self.ready_file.exists():
                self.ports = json.loads(self.ready_file.read_text())
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {_READY_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_STOP_TIMEOUT_S)
        # Whatever is left of the group (the main process, or workers it failed to reap).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        _live.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


SCANNED_OVER_AND_OVER = {"PHARMATRACE_CLONE_MAX_SCANS": str(10**9)}
"""The environment of a server whose codes a benchmark verifies over and over: past 20 scans
of a code (``Checks.max_scans``) every further check of it raises a clone alert, which a real
pack scanned a few times never does. A run that verifies each code more often (a fast machine,
a long window) would otherwise measure its later rounds on codes answered as clones. The check
itself still runs on every code."""


def pharmatrace_server(data: Path, workdir: Path, workers: int, name: str = "pharmatrace",
                       env: Mapping[str, str] | None = None) -> ServerProcess:
    """`pharmatrace serve --dev --insecure` on loopback, every port chosen by the kernel;
    ``env``: variables set for it on top of this process's."""
    return ServerProcess(
        [PYTHON, "-m", "pharmatrace_cli", "serve", "--dev", "--insecure", "--data", str(data),
         "--host", HOST, "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0",
         "--http-port", "0", "--workers", str(workers), "--grace", "2"],
        workdir, name, env,
    )


def echo_server(workdir: Path, workers: int) -> ServerProcess:
    """bench/echo.py: the bare gRPC baseline, ``workers`` processes on one port."""
    return ServerProcess([PYTHON, "-m", "bench.echo", "--host", HOST, "--workers", str(workers)],
                         workdir, "echo")


def _stop_all() -> None:
    for server in list(_live):
        server.stop()


atexit.register(_stop_all)


def exit_on_sigterm() -> None:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C, so ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory for ledgers and logs, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"pharmatrace-bench-{prefix}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"  (kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)
