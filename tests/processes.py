"""Stopping a process a test started, so that none outlives the test run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest

#: Generous bound for a slow CI machine; a healthy stop takes a fraction of it.
STOP_TIMEOUT_S = 30.0


def stop(process: subprocess.Popen[bytes], name: str, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM to ``process`` alone, as a service manager stops it: its exit code once it has
    exited, and anything it started left behind killed. One still running after ``timeout_s``
    is killed with everything it started, and the test fails naming ``name``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        kill(process)
        pytest.fail(f"{name} (pid {process.pid}) was still running {timeout_s:.0f} s after "
                    "SIGTERM; killed", pytrace=False)
    kill(process)
    return status


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to ``process`` and, when it leads a process group (started with
    ``start_new_session``), to everything in it, as a power cut would leave things; returns
    once it has exited."""
    with contextlib.suppress(ProcessLookupError):  # all gone, or not leading a group of its own
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait(STOP_TIMEOUT_S)
