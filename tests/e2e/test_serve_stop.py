"""`pharmatrace serve` and `pharmatrace replica` stopped (SIGTERM, as a service manager stops
them) while still starting stop what they have started and exit 0, as they do once serving: a
start held up by a NATS server that does not answer yet is given up, not killed half-way."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import START_TIMEOUT_S, group_alive, pharmatrace_command
from tests.e2e.nats_server import _free_port
from tests.processes import stop

WAITING_FOR_NATS = "NATS: [Errno 111]"  # ECONNREFUSED, however the event loop words it


def _stopped_while_waiting_for_nats(argv: list[str], log: Path, said: str) -> None:
    """Runs ``pharmatrace argv``, SIGTERMs it once its log says NATS refused it, and checks it
    stopped cleanly, saying ``said``, with nothing of it left running."""
    with log.open("wb") as out:
        process = subprocess.Popen([*pharmatrace_command(), *argv], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while WAITING_FOR_NATS not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    status = stop(process, f"pharmatrace {argv[0]} waiting for NATS")
    text = log.read_text(errors="replace")
    assert status == 0, text
    assert said in text
    assert "Traceback" not in text
    assert not group_alive(process.pid)


def test_serve_stopped_while_it_waits_for_nats_stops_cleanly(tmp_path: Path) -> None:
    _stopped_while_waiting_for_nats(
        ["serve", "--dev", "--insecure", "--data", str(tmp_path / "data"), "--issue-port", "0",
         "--verify-port", "0", "--metrics-port", "0", "--http-port", "0", "--workers", "1",
         "--nats", f"nats://127.0.0.1:{_free_port()}"],
        tmp_path / "serve.log", "stopped before it was ready")


def test_a_replica_stopped_while_it_waits_for_nats_stops_cleanly(tmp_path: Path) -> None:
    _stopped_while_waiting_for_nats(
        ["replica", "--dev", "--data", str(tmp_path / "replica"), "--tenants", "demo",
         "--verify-port", "0", "--metrics-port", "0", "--http-port", "0", "--workers", "1",
         "--nats", f"nats://127.0.0.1:{_free_port()}"],
        tmp_path / "replica.log", "replica stopped before it was ready")
