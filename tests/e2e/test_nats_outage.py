"""A writer whose NATS server goes away and comes back says so in its log once each way, and
keeps publishing: no stack trace for every attempt to reconnect."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Servers, pharmatrace_command
from tests.e2e.nats_server import NatsServer

pytestmark = pytest.mark.timeout(180)

GTIN = "09501101530003"


def _wait_for(server_log: Callable[[], str], text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in server_log():
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{server_log()}"
        time.sleep(0.1)


def test_a_nats_outage_is_logged_once_each_way(servers: Servers,
                                               nats_server: NatsServer) -> None:
    """While NATS is down for a few seconds (several reconnect attempts), the writer logs one
    warning that the link is lost and one line when it is back, no traceback, and a write
    answered with replicated commit afterwards is published."""
    writer = servers.start(workers=1, extra=["--nats", nats_server.url, "--replicated-commit"])
    _wait_for(writer.log_text, "snapshot of epoch 1 stored")
    nats_server.stop()
    time.sleep(3)
    nats_server.start()
    _wait_for(writer.log_text, "reconnected to NATS")
    added = subprocess.run([*pharmatrace_command(), "product", "add", "--gtin", GTIN, "--name",
                            "Amoxicillin 500 mg"], env=writer.env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    log = writer.log_text()
    assert "Traceback" not in log
    assert "nats: encountered error" not in log
    # One line per process that holds a connection (the writer, its verification worker's
    # front door), not one per attempt.
    assert 1 <= log.count("lost the connection to NATS") <= 2


def test_a_writer_stopped_by_sigterm_does_not_say_it_lost_nats(servers: Servers,
                                                               nats_server: NatsServer) -> None:
    """A clean stop closes the NATS connections itself: the log says the server stopped, not
    that the link was lost and is being reconnected."""
    writer = servers.start(workers=1, extra=["--nats", nats_server.url])
    _wait_for(writer.log_text, "snapshot of epoch 1 stored")
    assert writer.terminate() == 0
    log = writer.log_text()
    assert "stopped" in log
    assert "lost the connection to NATS" not in log, log


@pytest.mark.parametrize("command", [
    ["directory", "route", f"(01){GTIN}(21)01ABCDEFGHJK"],
    ["verify", f"(01){GTIN}(21)01ABCDEFGHJK"],
    ["tenant", "promote", "acme", "--node", "node-b"],
    ["tenant", "move", "acme", "--to", "node-b", "--replica-data", "replica"],
])
def test_a_command_says_at_once_that_nats_does_not_answer(tmp_path: Path,
                                                          command: list[str]) -> None:
    """A command given a NATS URL where nothing listens says so in one line and exits, instead
    of retrying for minutes with a traceback every attempt."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"nats://127.0.0.1:{s.getsockname()[1]}"
    done = subprocess.run([*pharmatrace_command(), *command, "--nats", url], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(f"pharmatrace: NATS does not answer at {url}")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
