"""A read replica: each tenant bootstrapped from its latest snapshot in the object store, then
kept up to date from its stream; the verification workers serve the copy read-only.

The copy's position (epoch, commit, stream sequence) is stored in the copy, in the transaction
that applies each batch, so a replica restarted at any point resumes after the last batch. A
change from a newer epoch, or a gap, sends the tenant back to a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from replica_svc import directory, snapshots
from replica_svc.read_your_writes import note_applied, note_following
from replica_svc.streams import (
    EPOCH,
    FENCE,
    PART,
    PARTS,
    SEALED,
    SEQ,
    all_subjects,
    connect_long_lived,
    keys_subject,
    stream_name,
)
from tracecore.files import write_atomic
from tracecore.ledger.tenants import KEYRING, LEDGER, OFFLINE, TENANTS
from tracecore.replication.apply import Applied, Gap, ReplicaLedger
from tracecore.replication.changes import Assembler, Change
from tracecore.replication.sealing import Sealing, part_context
from tracerpc.tasks import cancel_and_wait

log = logging.getLogger("pharmatrace.replica")

STATUS_FILE = ".replica-status.json"
#: Changes applied per transaction at most (one fsync each).
_BATCH = 512
_IDLE_S = 0.05
_RETRY_S = 1.0
#: How long the stream may stay ahead of the copy with nothing delivered before the replica
#: subscribes again: the client library's own consumer recreation can fail for good after a
#: link cut, leaving a subscription that never delivers.
_STALL_S = 5.0
#: How long readers get to close a copy about to be replaced (they look every 0.25 s).
_RELEASE_S = 1.0


@dataclass
class TenantStatus:
    """What ``pharmatrace replica status`` and the metrics show of one tenant."""

    tenant: str
    epoch: int = 0
    applied_commit: int = 0
    applied_stream_seq: int = 0
    stream_last_seq: int = 0
    lag_messages: int = 0
    lag_seconds: float = 0.0
    bootstraps: int = 0
    applied_changes: int = 0


class Stalled(Exception):
    """The subscription stopped delivering while the stream is ahead of the copy."""


class TenantReplica:
    """Follows one tenant's stream into the local copy."""

    def __init__(self, js: JetStreamContext, root: Path, tenant: str, sealing: Sealing) -> None:
        self._js = js
        self._root = root
        self.tenant = tenant
        self._sealing = sealing
        self.status = TenantStatus(tenant)
        self._ledger: ReplicaLedger | None = None
        self._applied = Applied(0, 0, 0, 0)

    @property
    def directory(self) -> Path:
        return self._root / TENANTS / self.tenant

    async def run(self) -> None:
        """Follows the stream until cancelled; every failure, starting over from a snapshot
        included, is logged and tried again."""
        start_over = False
        while True:
            try:
                if self._ledger is None or start_over:
                    await self._bootstrap(replace=start_over)
                    start_over = False
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Gap as exc:
                log.warning("tenant %s: %s; starting over from the latest snapshot",
                            self.tenant, exc.message)
                start_over = True
            except Stalled as exc:
                log.warning("tenant %s: %s; subscribing again", self.tenant, exc)
            except Exception as exc:
                log.warning("tenant %s: %s; retrying", self.tenant, exc)
                await asyncio.sleep(_RETRY_S)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    async def refresh_lag(self) -> None:
        try:
            info = await self._js.stream_info(stream_name(self.tenant))
        except NotFoundError:
            return
        last = int(info.state.last_seq)
        s = self.status
        s.stream_last_seq = last
        s.lag_messages = max(0, last - self._applied.stream_seq)
        at = self._applied.committed_at_ms
        s.lag_seconds = (0.0 if s.lag_messages == 0 or not at
                         else max(0.0, time.time() - at / 1000))

    async def _bootstrap(self, *, replace: bool) -> None:
        if self._ledger is not None and not replace:
            return
        path = self.directory / LEDGER
        if not replace and (path / "data.mdb").is_file():
            self._open()
            if self._applied.epoch or await self._adopt_own_ledger():
                return
        info, data = await self._latest_snapshot()
        self.close()
        staging = self._root / TENANTS / f".bootstrap-{self.tenant}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        await asyncio.to_thread(snapshots.unpack, info, data, staging, self._sealing)
        await asyncio.to_thread(self._swap, staging)
        self._open()
        assert self._ledger is not None
        self._applied = await asyncio.to_thread(self._ledger.start_from_snapshot, info.stream_seq)
        self.status.bootstraps += 1
        self._publish_status()
        log.info("tenant %s: bootstrapped from the snapshot of epoch %d (stream from %d)",
                 self.tenant, info.epoch, info.stream_seq + 1)

    async def _adopt_own_ledger(self) -> bool:
        """A writer's own ledger, fenced by a promotion, follows on from where its stream took
        it when it holds exactly that: its last commit is the stream's last change before the
        fence. Otherwise (a commit the stream refused after the fence, or made once capture had
        ended: never acknowledged) it is closed, and replaced by the latest snapshot."""
        ledger = self._ledger
        assert ledger is not None
        try:
            position = await asyncio.to_thread(ledger.published)
            if position is not None and await self._stream_ends_commit(position):
                self._applied = await asyncio.to_thread(ledger.start_from_snapshot,
                                                        position.stream_seq)
                self._publish_status()
                log.info("tenant %s: this node's copy holds every change its stream took "
                         "(epoch %d, commit %d); following on from stream sequence %d",
                         self.tenant, position.epoch, position.commit_seq,
                         position.stream_seq + 1)
                return True
        except BaseException:
            self.close()
            raise
        self.close()
        log.warning("tenant %s: this node's copy holds changes its stream never took (written "
                    "as the writer after the fence); replacing it with the latest snapshot",
                    self.tenant)
        return False

    async def _stream_ends_commit(self, position: Applied) -> bool:
        """Whether stream sequence ``position.stream_seq`` is the last part of the commit
        ``position`` names."""
        try:
            msg = await self._js.get_msg(stream_name(self.tenant), position.stream_seq)
        except NotFoundError:
            return False
        h = msg.headers or {}
        return (h.get(EPOCH), h.get(SEQ)) == (str(position.epoch), str(position.commit_seq)) \
            and int(h.get(PART, -1)) + 1 == int(h.get(PARTS, 0))

    async def _latest_snapshot(self) -> tuple[snapshots.SnapshotInfo, bytes]:
        """The latest sealed snapshot, once there is one."""
        told = ""
        while True:
            info = await snapshots.latest(self._js, self.tenant)
            if info is not None and info.sealed:
                got = await snapshots.fetch(self._js, self.tenant)
                if got is not None and got[0].sealed:
                    return got
            else:
                why = ("the snapshot in the store is in clear (an earlier release's); waiting "
                       "for its writer to store a sealed one" if info is not None else
                       "no snapshot in the store yet; waiting for its writer")
                if why != told:
                    log.info("tenant %s: %s", self.tenant, why)
                    told = why
            await asyncio.sleep(_RETRY_S)

    def _swap(self, staging: Path) -> None:
        target = self.directory
        if target.exists():
            (target / OFFLINE).write_text("replaced by a newer snapshot\n")
            time.sleep(_RELEASE_S)
            old = target.with_name(f".replaced-{self.tenant}-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, target)

    def _open(self) -> None:
        self._ledger = ReplicaLedger(self.directory / LEDGER, self.tenant)
        self._applied = self._ledger.applied()
        self._publish_status()

    async def _follow(self) -> None:
        ledger = self._ledger
        assert ledger is not None
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def received(msg: Msg) -> None:
            await queue.put(msg)

        sub = await self._js.subscribe(
            all_subjects(self.tenant), cb=received, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                  opt_start_seq=self._applied.stream_seq + 1))
        assembler = Assembler()
        try:
            while True:
                first = await self._next(queue)
                batch: list[tuple[Change, int]] = []
                last_stream = 0
                msg: Msg | None = first
                while msg is not None:
                    last_stream = msg.metadata.sequence.stream
                    if msg.subject == keys_subject(self.tenant):
                        await asyncio.to_thread(write_atomic, self.directory / KEYRING,
                                                msg.data)
                        msg = queue.get_nowait() if not queue.empty() else None
                        continue
                    h = msg.headers or {}
                    if FENCE in h:  # a promotion: the new writer's changes follow in a new epoch
                        msg = queue.get_nowait() if not queue.empty() else None
                        continue
                    if h.get(SEALED) != "1":
                        raise Gap(f"stream message {last_stream} is in clear (written by an "
                                  "earlier release)")
                    epoch, seq, part, parts = (int(h[EPOCH]), int(h[SEQ]), int(h[PART]),
                                               int(h[PARTS]))
                    piece = self._sealing.open(self.tenant, epoch,
                                               part_context(seq, part, parts), msg.data)
                    whole = assembler.add(seq, part, parts, piece)
                    if whole is not None and epoch >= self._applied.epoch:
                        batch.append((Change.decode(whole), last_stream))
                    if len(batch) >= _BATCH:
                        break
                    msg = queue.get_nowait() if not queue.empty() else None
                self._applied = await asyncio.to_thread(ledger.apply, batch, last_stream)
                self.status.applied_changes += len(batch)
                self._publish_status()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _next(self, queue: asyncio.Queue[Msg]) -> Msg:
        """The next delivered message; Stalled when the stream is known to be ahead of the
        copy (refresh_lag reads its last sequence) and nothing came for ``_STALL_S``."""
        while True:
            try:
                return await asyncio.wait_for(queue.get(), _STALL_S)
            except TimeoutError:
                if self.status.stream_last_seq > self._applied.stream_seq:
                    raise Stalled(f"the stream holds sequence {self.status.stream_last_seq}, "
                                  f"the copy {self._applied.stream_seq}, and nothing came "
                                  f"for {_STALL_S:.0f} s") from None

    def _publish_status(self) -> None:
        note_applied(self._root, self.tenant, self._applied.stream_seq)
        s = self.status
        s.epoch = self._applied.epoch
        s.applied_commit = self._applied.commit_seq
        s.applied_stream_seq = self._applied.stream_seq
        s.lag_messages = max(0, s.stream_last_seq - s.applied_stream_seq)


class Replica:
    """Every followed tenant of one replica data directory."""

    def __init__(self, nc: Client, root: Path, sealing: Sealing) -> None:
        self._nc = nc
        self.root = root
        self._sealing = sealing
        self.tenants: dict[str, TenantReplica] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._following: dict[str, asyncio.Task[None]] = {}
        #: (tenants, verification address, front door) as announced in the directory.
        self._announced: tuple[list[str], str, str] = ([], "", "")

    @classmethod
    async def start(cls, url: str, root: Path, tenants: list[str], sealing: Sealing
                    ) -> Replica:
        nc = await connect_long_lived(url, "pharmatrace-replica")
        (root / TENANTS).mkdir(parents=True, exist_ok=True)
        replica = cls(nc, root, sealing)
        for tenant in tenants:
            replica.follow(tenant)
        replica._tasks.append(asyncio.create_task(replica._report_forever()))
        return replica

    def follow(self, tenant: str) -> None:
        """Starts following ``tenant``'s stream into the copy in this data directory."""
        follower = TenantReplica(self._nc.jetstream(), self.root, tenant, self._sealing)
        self.tenants[tenant] = follower
        note_following(self.root, list(self.tenants))
        self._following[tenant] = asyncio.create_task(follower.run())

    @property
    def js(self) -> JetStreamContext:
        return self._nc.jetstream()

    async def release(self, tenants: list[str] | None = None) -> None:
        """Stops following ``tenants`` (every tenant by default) and closes their copies, for
        this node's writer to open them (``replica_svc.handover``): called once every fence is
        applied, when nothing is left to apply."""
        names = list(self.tenants) if tenants is None else [t for t in tenants
                                                            if t in self.tenants]
        await cancel_and_wait(*[self._following.pop(t) for t in names if t in self._following])
        for name in names:
            self.tenants.pop(name).close()

    async def announce(self, verify: str, front_door: str = "") -> None:
        """Adds this replica to its tenants' entries in the directory, with the public base URL
        of its HTTP front door ("" when it has none), and marks its addresses seen every
        ``directory.HEARTBEAT_S`` from now on."""
        self._announced = (list(self.tenants), verify, front_door)
        await self._announce()
        self._tasks.append(asyncio.create_task(self._heartbeat_forever()))

    async def _announce(self) -> None:
        tenants, verify, front_door = self._announced
        for tenant in tenants:
            await directory.announce_replica(self._nc.jetstream(), tenant, verify, front_door)

    async def _heartbeat_forever(self) -> None:
        """Marks this replica's addresses seen (a write an address, whatever the number of
        tenants). After ``directory.STALE_S`` without a mark (NATS away, the process paused)
        another replica may have taken it out of its tenants' entries: it announces itself
        in them again."""
        _, verify, front_door = self._announced
        marked = time.monotonic()
        while True:
            await asyncio.sleep(directory.HEARTBEAT_S)
            try:
                if time.monotonic() - marked >= directory.STALE_S:
                    await self._announce()
                else:
                    await directory.mark_seen(self._nc.jetstream(),
                                              [a for a in (verify, front_door) if a])
                marked = time.monotonic()
            except Exception as exc:  # NATS away: marked again on the next round
                log.warning("marking this replica seen in the directory failed: %s",
                            exc or type(exc).__name__)

    def statuses(self) -> list[TenantStatus]:
        return [t.status for t in self.tenants.values()]

    async def _report_forever(self) -> None:
        while True:
            for tenant in self.tenants.values():
                with contextlib.suppress(Exception):
                    await tenant.refresh_lag()
            write_status(self.root, self.statuses())
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        tenants, verify, front_door = self._announced
        if tenants:
            await directory.withdraw(self._nc.jetstream(), tenants, front_door=front_door,
                                     verify=verify)
        await self.release()
        await self._nc.close()


def write_status(root: Path, statuses: list[TenantStatus]) -> None:
    doc = {"at_ms": int(time.time() * 1000), "tenants": [asdict(s) for s in statuses]}
    tmp = root / f"{STATUS_FILE}.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, root / STATUS_FILE)


def read_status(root: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((root / STATUS_FILE).read_text())
    return loaded
