"""`pharmatrace replica` stops on SIGTERM, exiting 0, whatever its tenants' copies are doing:
even while one keeps starting over from a snapshot because its stream misses a change, and
when the snapshot it starts over from is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from replica_svc import snapshots
from replica_svc.streams import EPOCH, PART, PARTS, SEALED, SEQ, stream_name, subject
from tests.e2e.nats_server import NatsServer
from tests.e2e.test_move import _move, _writer_issue
from tests.e2e.test_replica import _converged, _promote, _start_replica
from tests.e2e.test_replication_stream import (
    GTIN,
    SEALING,
    TENANT,
    _holding,
    _newest_commit,
    _write,
)
from tests.processes import stop
from tracecore.replication.changes import Change
from tracecore.replication.sealing import part_context

pytestmark = pytest.mark.timeout(240)

#: What a replica says each time the snapshot it would start over from names another position
#: than the one sealed in it.
REFUSED = "as its description says"


def test_a_replica_starting_over_again_and_again_stops_on_sigterm(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """A replica whose tenant's stream lost a commit after the snapshot goes back to the
    snapshot on each attempt ("changes ... are missing"); SIGTERM still stops it, exit 0."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    serials = [s for lot in ("L1", "L2", "L3") for s in _write(writer.issue_addr, lot, 20)]
    _holding(nats_server.url, set(serials))
    writer.kill()  # no newer snapshot will come to mend it
    missing = _drop_first_commit(nats_server.url)
    replica_data = tmp_path / "replica"
    process, _ = _start_replica(nats_server.url, replica_data)
    log = tmp_path / "replica.log"
    try:
        _wait(lambda: _bootstraps(replica_data) >= 3, "the replica never started over", log)
        assert f"changes {missing}.." in log.read_text()
    finally:
        status = stop(process, "pharmatrace replica")
    assert status == 0, log.read_text()


def test_a_replica_refused_the_snapshot_it_starts_over_from_says_why_and_stops_on_sigterm(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """A replica starting over from the snapshot, again and again, that meets a snapshot whose
    description names another position than the one sealed in it keeps trying, saying why in
    its log; SIGTERM stops it, exit 0."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    serials = [s for lot in ("L1", "L2", "L3") for s in _write(writer.issue_addr, lot, 20)]
    _holding(nats_server.url, set(serials))
    writer.kill()
    _drop_first_commit(nats_server.url)
    replica_data = tmp_path / "replica"
    process, _ = _start_replica(nats_server.url, replica_data)
    log = tmp_path / "replica.log"
    try:
        _wait(lambda: _bootstraps(replica_data) >= 2, "the replica never started over", log)
        _forge_snapshot_position(nats_server.url)
        _wait(lambda: log.read_text().count(REFUSED) >= 2,
              "the replica never said why it cannot start over", log)
    finally:
        status = stop(process, "pharmatrace replica")
    assert status == 0, log.read_text()


def test_a_fenced_writer_in_a_replica_starting_over_stops_on_sigterm(
        servers, nats_server: NatsServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that wrote the tenant once promoted (--write-when-promoted), fenced when the
    tenant moved back, keeps its copy current from the stream; when that copy must start over
    and the snapshot is refused, it keeps trying, saying why; SIGTERM stops it, exit 0."""
    url = nats_server.url
    monkeypatch.setenv("PHARMATRACE_NODE", "node-a")
    old = servers.start(tmp_path / "writer", extra=["--nats", url, "--replicated-commit"])
    code = f"(01){GTIN}(21){_write(old.issue_addr, 'L1', 10)[0]}"
    replica_data = tmp_path / "replica"
    monkeypatch.setenv("PHARMATRACE_NODE", "node-b")
    process, _ = _start_replica(url, replica_data,
                                extra=["--write-when-promoted", "--issue-port", "0"])
    log = tmp_path / "replica.log"
    try:
        _converged(replica_data, _newest_commit(url))
        _promote(url, replica_data)
        _wait(lambda: _writer_issue(url, code) not in ("", old.issue_addr),
              "node-b never announced itself writer", log)
        _move(url, tmp_path / "writer", "node-a")
        _wait(lambda: _writer_issue(url, code) == old.issue_addr,
              "node-a never announced itself writer again", log)
        _holding(url, set(_write(old.issue_addr, "L2", 10)))
        old.kill()
        _forge_snapshot_position(url)
        _publish_beyond_next(url)
        _wait(lambda: log.read_text().count(REFUSED) >= 2,
              "node-b never said why it cannot start over", log)
    finally:
        status = stop(process, "pharmatrace replica of node-b")
    assert status == 0, log.read_text()


def _wait(condition: Callable[[], bool], failure: str, log: Path,
          timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{failure}:\n{log.read_text()}"
        time.sleep(0.1)


def _bootstraps(data: Path) -> int:
    try:
        doc = json.loads((data / ".replica-status.json").read_text())
        return int(doc["tenants"][0]["bootstraps"])
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def _drop_first_commit(url: str) -> int:
    """Deletes every part of the first commit in the tenant's stream, as a stream damaged by
    hand would lose it: the commit's sequence."""

    async def drop() -> int:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            name = stream_name(TENANT)
            info = await js.stream_info(name)
            first: tuple[str, str] | None = None
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                h = (await js.get_msg(name, seq)).headers or {}
                if SEQ not in h:  # the key ring sent beside the changes
                    continue
                if first is None:
                    first = (h[EPOCH], h[SEQ])
                if (h[EPOCH], h[SEQ]) != first:
                    break
                await js.delete_msg(name, seq)
            assert first is not None, "the stream holds no change"
            return int(first[1])
        finally:
            await nc.close()

    return asyncio.run(drop())


def _publish_beyond_next(url: str) -> None:
    """Publishes a sealed change of the stream's last epoch numbered five past its last commit,
    as a writer that lost commits would: the changes in between are missing."""

    async def publish() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            last = await js.get_last_msg(stream_name(TENANT), subject(TENANT))
            h = last.headers or {}
            epoch, seq = int(h[EPOCH]), int(h[SEQ]) + 5
            data = Change(epoch, seq, int(time.time() * 1000)).encode()
            await js.publish(subject(TENANT), SEALING.seal(TENANT, epoch,
                                                           part_context(seq, 0, 1), data),
                             stream=stream_name(TENANT),
                             headers={EPOCH: str(epoch), SEQ: str(seq), PART: "0", PARTS: "1",
                                      SEALED: "1"})
        finally:
            await nc.close()

    asyncio.run(publish())


def _forge_snapshot_position(url: str) -> None:
    """Rewrites the description of the tenant's snapshot in the object store to name a later
    stream sequence than the one sealed in it, as anyone with access to the bucket could."""

    async def forge() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            got = await snapshots.fetch(js, TENANT)
            assert got is not None
            info, data = got
            await snapshots.put(js, dataclasses.replace(info, stream_seq=info.stream_seq + 5),
                                data)
        finally:
            await nc.close()

    asyncio.run(forge())
