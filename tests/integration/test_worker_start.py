"""A verification worker whose serving process stopped while the worker was starting (a
SIGTERM during `serve`'s start) stops on its own, cleanly, instead of dying on a traceback."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from verify_svc.workers import WorkerConfig, _worker_main


def test_a_worker_whose_server_hung_up_before_it_was_ready_stops_cleanly(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    DataDir(tmp_path / "data", KeySource.dev()).close()
    config = WorkerConfig(tmp_path / "data", "127.0.0.1", 0, dev_keys=True, tls=None,
                          grace_s=1.0, http_port=0)
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(target=_worker_main, args=(config, send))
    worker.start()
    send.close()
    receive.close()  # the serving process is gone: nobody reads the worker's port
    worker.join(60)
    assert worker.exitcode == 0
    err = capfd.readouterr().err
    assert "the serving process is gone before this worker was ready; it stops" in err
    assert "Traceback" not in err
