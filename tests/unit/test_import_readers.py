"""The processes that read partners' documents run only on what the server leaves of the
cores, from their start."""

from __future__ import annotations

import os

from tracecore.usecases.importer import Importer


def test_reader_processes_are_started_under_the_idle_policy() -> None:
    importer = Importer(workers=2)
    try:
        pool = importer._executor()
        pids = [p.pid for p in pool._processes.values() if p.pid is not None]
        assert len(pids) == 2
        assert [os.sched_getscheduler(pid) for pid in pids] == [os.SCHED_IDLE] * 2
        # The server itself keeps the ordinary policy.
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        importer.close()
