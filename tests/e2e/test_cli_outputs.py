"""Where the CLI writes: a device or pipe given as --out is written to, never replaced."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from pathlib import Path

from tests.e2e.conftest import Server, run_cli

GTIN = "09501101530003"
LOT = "LOT-OUT"


def test_codes_written_to_a_named_pipe_arrive_there_and_the_pipe_stays_a_pipe(
        server: Server, tmp_path: Path) -> None:
    """`codes request --out FIFO` writes the codes into the pipe (as to /dev/null or a device)
    instead of renaming a regular file over it."""
    tenant = f"out-{uuid.uuid4().hex[:8]}"
    for args in (["tenant", "create", tenant, "--name", "Out Pharma"],
                 ["product", "add", "--tenant", tenant, "--gtin", GTIN, "--name", "Pack"],
                 ["batch", "add", "--tenant", tenant, "--product", GTIN, "--lot", LOT,
                  "--expires", "2031-01-01"]):
        assert run_cli(args, env=server.env, cwd=tmp_path).returncode == 0
    pipe = tmp_path / "codes.fifo"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.extend(pipe.read_text().split()))
    reader.start()
    done = run_cli(["codes", "request", "--tenant", tenant, "--product", GTIN, "--lot", LOT,
                    "--count", "7", "--request-id", uuid.uuid4().hex, "--out", str(pipe),
                    "--quiet"], env=server.env, cwd=tmp_path)
    reader.join(60)
    assert done.returncode == 0, done.stderr
    assert len(received) == 7
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert not (tmp_path / "codes.fifo.part").exists()
