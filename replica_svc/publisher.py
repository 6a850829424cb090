"""The writer's side: each tenant's outbox published, in order, to its JetStream stream.

A message per part of a change record, with the id "epoch:commit:part": the stream drops a
resend within its duplicate window. The cursor in the ledger moves only after the stream has
acknowledged a commit's last part; at start the publisher also asks the stream for its last
message, so a crash after publishing and before moving the cursor sends nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
from collections.abc import Mapping

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from replica_svc import directory, snapshots
from replica_svc.handover import promotion_fences
from replica_svc.read_your_writes import applied
from replica_svc.replica import Replica
from replica_svc.streams import (
    EPOCH,
    EXPECTED_LAST,
    FENCE,
    MSG_ID,
    PART,
    PARTS,
    SEALED,
    SEQ,
    connect_long_lived,
    ensure_stream,
    keys_subject,
    msg_id,
    stream_name,
    subject,
)
from tracecore.errors import FailedPrecondition, Unavailable
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.replication.capture import ChangeCapture
from tracecore.replication.changes import PUT, Change, iter_parts
from tracecore.replication.sealing import Sealing, part_context
from tracerpc.tasks import cancel_and_wait

log = logging.getLogger("pharmatrace.replication")

#: Outbox read per round: large pools go out in a few rounds, not one huge read.
_ROUND_BYTES = 4 << 20
_RETRY_S = 0.5
_ATTACH_EVERY_S = 1.0
#: How often a writer looks in the directory for a move of its tenants (the pause begins
#: within this long of `tenant move`).
MOVES_EVERY_S = 0.2
#: A change record names its databases first: products registered show within these bytes.
_PRODUCT_IDS = b"product_ids"
_NAMES_SPAN = 1024
_PRODUCTS_PAGE = 1000


class TenantPublisher:
    """Publishes one tenant's captured changes."""

    def __init__(self, js: JetStreamContext, tenant: Tenant, capture: ChangeCapture,
                 sealing: Sealing, node: str = "") -> None:
        self.tenant = tenant.name
        self._sealing = sealing
        self.node = node or this_node()
        #: Why this node no longer writes the tenant ("" while it does).
        self.fenced = ""
        #: Why writes pause ("" while they do not): the tenant is being moved to another node.
        self.paused = ""
        self._expect = 0
        self._opened = tenant
        self.capture = capture
        self._js = js
        self._wake = asyncio.Event()
        self._acked = 0
        self._acked_changed = asyncio.Condition()
        self._keyring_digest = ""
        self._products_registered = False
        #: The epoch this publisher stored a snapshot of (0: none yet).
        self._stored = 0
        loop = asyncio.get_running_loop()

        def wake(_: int) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        capture.on_commit(wake)

    @property
    def stream_seq(self) -> int:
        """The stream sequence of the last change the stream has acknowledged."""
        return self._expect

    @property
    def acked(self) -> int:
        """The last commit the stream has acknowledged."""
        return self._acked

    async def wait_acked(self, seq: int) -> None:
        async with self._acked_changed:
            await self._acked_changed.wait_for(lambda: self._acked >= seq or bool(self.fenced))
        self.refuse_if_fenced()

    def refuse_if_fenced(self) -> None:
        if self.fenced:
            raise FailedPrecondition(self.refusal())

    def refusal(self) -> str:
        """What a write is answered once this node was fenced."""
        return (f"this node ({self.node}) no longer writes tenant {self.tenant}: {self.fenced}; "
                "write to the new writer")

    def refuse_if_paused(self) -> None:
        self.refuse_if_fenced()
        if self.paused:
            raise Unavailable(f"tenant {self.tenant} is {self.paused}: writes pause for a few "
                              "seconds, then go to the new writer; retry")

    async def run(self) -> None:
        while not self.fenced:
            try:
                await self._publish_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or slow: the outbox keeps everything
                if _refused_as_stale(exc):
                    await self.step_down("the stream refused its change after another node "
                                          "was promoted")
                    return
                log.warning("publishing tenant %s: %s; retrying", self.tenant, exc)
                await asyncio.sleep(_RETRY_S)

    async def step_down(self, why: str) -> None:
        """This node no longer writes the tenant: publishing ends, writes are refused."""
        if self.fenced:
            return
        log.error("tenant %s: %s; node %s steps down and refuses writes", self.tenant, why,
                  self.node)
        self.fenced = why
        self._wake.set()
        async with self._acked_changed:
            self._acked_changed.notify_all()

    async def _publish_forever(self) -> None:
        await ensure_stream(self._js, self.tenant)
        node, term = await directory.writer_node(self._js, self.tenant)
        if node and node != self.node:
            await self.step_down(f"node {node} was promoted writer (term {term})")
            return
        await self._follow_fence()
        await self._snapshot_if_needed()
        if not self._products_registered:
            # Products registered before publishing began (a tenant created before the
            # publisher attached to it, or before `--nats`) are in no change record.
            registered = await asyncio.to_thread(_product_ids, self._opened)
            await directory.register_products(self._js, self.tenant, registered)
            self._products_registered = True
        position = await asyncio.to_thread(self.capture.position)
        done, skip_parts = await self._resync(position.published_seq)
        await self._set_acked(done)
        while not self.fenced:
            self._wake.clear()
            batch = await asyncio.to_thread(self.capture.pending, done, _ROUND_BYTES)
            if not batch:
                await self._wake.wait()
                continue
            # Read after the batch: a change minted under a new key was committed after the
            # ring holding that key was saved, so the ring read now holds it.
            await self._publish_keyring_if_changed()
            stream_seq = 0
            products: list[str] = []
            for seq, data in batch:
                if _PRODUCT_IDS in data[:_NAMES_SPAN]:
                    products += [key.decode() for kind, db, key, _ in Change.decode(data).ops
                                 if db == "product_ids" and kind == PUT]
                epoch = self.capture.epoch
                for part, parts, piece in iter_parts(data):
                    if seq == skip_parts[0] and part <= skip_parts[1]:
                        continue
                    sealed = self._sealing.seal(self.tenant, epoch,
                                                part_context(seq, part, parts), piece)
                    ack = await self._js.publish(
                        subject(self.tenant), sealed, stream=stream_name(self.tenant),
                        headers={MSG_ID: msg_id(epoch, seq, part), EPOCH: str(epoch),
                                 SEQ: str(seq), PART: str(part), PARTS: str(parts),
                                 SEALED: "1", EXPECTED_LAST: str(self._expect)})
                    stream_seq = self._expect = ack.seq
                done = seq
            await asyncio.to_thread(self.capture.mark_published, done, stream_seq)
            await self._set_acked(done)
            if products:
                await directory.register_products(self._js, self.tenant, products)

    async def _publish_keyring_if_changed(self) -> None:
        ring = await asyncio.to_thread(self._opened.keyring_path.read_bytes)
        digest = hashlib.sha256(ring).hexdigest()
        if digest == self._keyring_digest:
            return
        await self._js.publish(keys_subject(self.tenant), ring, stream=stream_name(self.tenant),
                               headers={MSG_ID: f"keys:{digest}"})
        self._keyring_digest = digest

    async def _snapshot_if_needed(self) -> None:
        """A snapshot of this epoch in the object store before any change of it is published:
        the stream's last sequence is read first and the copy taken after, so the changes a
        replica needs after the copy are all past that sequence."""
        current = await snapshots.latest(self._js, self.tenant)
        if current is not None and current.epoch == self.capture.epoch and current.sealed:
            return
        stream = await self._js.stream_info(stream_name(self.tenant))
        info = snapshots.SnapshotInfo(self.tenant, self.capture.epoch, stream.state.last_seq)
        data = await asyncio.to_thread(snapshots.pack, self._opened, info, self._sealing)
        await snapshots.put(self._js, info, data)
        self._stored = self.capture.epoch
        log.info("tenant %s: snapshot of epoch %d stored (%d bytes)", self.tenant,
                 self.capture.epoch, len(data))

    async def _follow_fence(self) -> None:
        """A writer promoted by a fence starts an epoch above every epoch the stream and the
        snapshot store hold (another writer may have stored a snapshot of an epoch it published
        nothing in), so replicas take its snapshot rather than mix its commits with the old
        writer's."""
        try:
            last = await self._js.get_last_msg(stream_name(self.tenant), subject(self.tenant))
        except NotFoundError:
            return
        headers = last.headers or {}
        if FENCE not in headers:
            return
        stored = await snapshots.latest(self._js, self.tenant)
        theirs = stored.epoch if stored is not None and stored.epoch != self._stored else 0
        above = max(int(headers.get(EPOCH, 0)), theirs)
        if self.capture.epoch <= above:
            await asyncio.to_thread(self.capture.begin_epoch, above + 1)

    async def _resync(self, published: int) -> tuple[int, tuple[int, int]]:
        """(last commit wholly in the stream, (commit, last part) already in it): the ledger's
        cursor, moved up to the stream's last message of this epoch."""
        try:
            last = await self._js.get_last_msg(stream_name(self.tenant), subject(self.tenant))
        except NotFoundError:
            self._expect = 0
            return published, (0, -1)
        self._expect = last.seq or 0
        headers = last.headers or {}
        epoch, seq = int(headers.get(EPOCH, 0)), int(headers.get(SEQ, 0))
        part, parts = int(headers.get(PART, 0)), int(headers.get(PARTS, 1))
        if epoch != self.capture.epoch or seq <= published:
            return published, (0, -1)
        if part + 1 == parts:
            await asyncio.to_thread(self.capture.mark_published, seq, last.seq or 0)
            return seq, (0, -1)
        return seq - 1, (seq, part)

    async def _set_acked(self, seq: int) -> None:
        async with self._acked_changed:
            self._acked = seq
            self._acked_changed.notify_all()


class Replication:
    """Every tenant of a data directory published to NATS; tenants created later join within
    ``_ATTACH_EVERY_S``."""

    def __init__(self, nc: Client, data: DataDir, sealing: Sealing) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._data = data
        self._sealing = sealing
        self.publishers: dict[str, TenantPublisher] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._by_tenant: dict[str, asyncio.Task[None]] = {}
        self._addresses: tuple[str, str] | None = None
        self._front_door = ""
        self._url = ""
        #: The tenants this node was fenced from, their copies kept current from their new
        #: writers' streams (started at the first fence, unless ``start`` was given them).
        self.followers: Replica | None = None
        self._stops_followers = True

    async def announce(self, issue: str, verify: str, front_door: str = "") -> None:
        """Names this node as the writer of its tenants in the directory, with the public base
        URL of its HTTP front door ("" when it has none)."""
        self._addresses = (issue, verify)
        self._front_door = front_door
        for name in self.publishers:
            await self._announce(name)

    async def _announce(self, name: str) -> None:
        assert self._addresses is not None
        if not await directory.announce_writer(self._js, name, this_node(), *self._addresses):
            return
        if self._front_door:
            await directory.announce_front_door(self._js, name, self._front_door)

    @classmethod
    async def start(cls, url: str, data: DataDir, followers: Replica | None = None
                    ) -> Replication:
        """``followers``: the replica already following streams into ``data`` (a replica
        whose node was promoted, `replica --write-when-promoted`), which then follows the
        tenants this node is fenced from too, rather than a second one beside it; whoever
        started it stops it."""
        sealing = await asyncio.to_thread(Sealing.of, data)
        nc = await connect_long_lived(url, "pharmatrace-writer")
        replication = cls(nc, data, sealing)
        replication._url = url
        if followers is not None:
            replication.followers, replication._stops_followers = followers, False
        await replication.attach_new()
        replication._tasks.append(asyncio.create_task(replication._attach_forever()))
        replication._tasks.append(asyncio.create_task(replication._watch_moves()))
        return replication

    async def attach_new(self) -> None:
        """Starts publishing every tenant not published yet, and again every tenant whose
        ledger was closed and opened again (taken offline for maintenance, then back)."""
        for name in self._data.names():
            if self._data.followed(name) is not None:
                await self._follow(name)
                continue
            current = self.publishers.get(name)
            if current is not None and not current.capture.env.closed:
                continue
            try:
                tenant = self._data.get(name)
            except Exception as exc:  # offline or damaged: tried again on the next round
                log.debug("tenant %s not published yet: %s", name, exc)
                continue
            env = tenant.ledger.env
            if current is not None:
                if current.capture.env is env:
                    continue
                await cancel_and_wait(self._by_tenant.pop(name))
            capture = env.capture if isinstance(env.capture, ChangeCapture) else None
            if capture is None:
                capture = await asyncio.to_thread(ChangeCapture, env, _dupsort())
            publisher = TenantPublisher(self._js, tenant, capture, self._sealing)
            self.publishers[name] = publisher
            self._by_tenant[name] = asyncio.create_task(self._publish(publisher))
            log.info("publishing tenant %s to stream %s (epoch %d)", name, stream_name(name),
                     capture.epoch)
            if self._addresses is not None:
                await self._announce(name)

    async def _publish(self, publisher: TenantPublisher) -> None:
        """Publishes a tenant until this node is fenced from it; then its copy follows the new
        writer's stream, as a replica's does, so that this node's reads of it stay current."""
        await publisher.run()
        if publisher.fenced:
            publisher.capture.detach()
            await asyncio.to_thread(self._data.follow, publisher.tenant, publisher.refusal())
            await self._follow(publisher.tenant)

    async def _follow(self, name: str) -> None:
        if self.followers is None:
            self.followers = await Replica.start(self._url, self._data.root, [],
                                                 self._sealing)
        if name not in self.followers.tenants:
            log.info("tenant %s: following its new writer's stream from now on", name)
            self.followers.follow(name)

    async def _take_back_if_promoted(self, name: str) -> None:
        """A followed tenant whose writing came back to this node (`tenant move`, `tenant
        promote`): once the copy has applied the promotion's fence it holds every acknowledged
        write, and this node writes it again (published from ``_attach_forever``'s next
        round)."""
        assert self.followers is not None
        fences = await promotion_fences(self._js, [name], this_node())
        if fences is None or applied(self._data.root, name) < fences[name]:
            return
        await self.followers.release([name])
        # The fenced publisher stays until attach_new replaces it, refusing writes meanwhile:
        # none is answered before a publisher of the new epoch holds it.
        await asyncio.to_thread(self._data.unfollow, name)
        log.info("tenant %s: this node was promoted its writer again; writing it from the "
                 "fence (stream %d)", name, fences[name])

    def stream_seq(self, tenant: str) -> int:
        """The stream sequence holding every acknowledged change of ``tenant`` (0: unknown)."""
        publisher = self.publishers.get(tenant)
        return publisher.stream_seq if publisher is not None else 0

    def refuse_writes(self, tenant: str) -> TenantPublisher | None:
        """Before a write to ``tenant``: FailedPrecondition if this node no longer writes it,
        Unavailable while it is being moved; its publisher (None while it has none). Another
        tenant's move or fence stops no write of this one."""
        publisher = self.publishers.get(tenant)
        if publisher is not None:
            publisher.refuse_if_paused()
        return publisher

    async def _watch_moves(self) -> None:
        """Pauses a tenant's writes while it moves, and steps down from a tenant another node
        was promoted for even when no write of this node's meets the fence in the stream;
        takes back a tenant it follows once promoted for it again."""
        while True:
            try:
                for name, publisher in list(self.publishers.items()):
                    if publisher.fenced:
                        continue
                    doc = await directory.entry(self._js, name)
                    node, term = directory.writer_of(doc)
                    if node and node != publisher.node:
                        await publisher.step_down(f"node {node} was promoted writer (term "
                                                  f"{term})")
                        continue
                    to = str(doc.get("moving_to", ""))
                    paused = f"moving to node {to}" if to and to != publisher.node else ""
                    if paused != publisher.paused:
                        log.warning("tenant %s: %s", name, paused or "writes resume")
                        publisher.paused = paused
                for name in list(self.followers.tenants if self.followers else ()):
                    await self._take_back_if_promoted(name)
            except Exception as exc:  # NATS away: the fence still protects every write
                log.debug("looking for moves failed: %s", exc)
            await asyncio.sleep(MOVES_EVERY_S)

    async def wait_replicated(self, written: Mapping[str, TenantPublisher | None]) -> None:
        """Returns once the streams of the tenants a call wrote (each with the publisher
        ``refuse_writes`` admitted it under) hold every change committed to them before this
        call. FailedPrecondition if this node was fenced from one of them since: a change of
        the call may then have been committed after the fence, or after its capture ended, and
        it would never reach the new writer."""
        for admitted in written.values():
            if admitted is not None:
                admitted.refuse_if_fenced()
        current = [p for p in map(self.publishers.get, written) if p is not None]
        targets = [(p, p.capture.commit_seq) for p in current]
        for publisher, seq in targets:
            await publisher.wait_acked(seq)

    async def _attach_forever(self) -> None:
        while True:
            await asyncio.sleep(_ATTACH_EVERY_S)
            try:
                await self.attach_new()
            except Exception:
                log.exception("attaching new tenants to replication failed")

    async def drain(self, timeout_s: float) -> None:
        """Waits, up to ``timeout_s``, until the stream holds every commit made so far (a
        shutdown's last writes and seal); what is left stays in the outbox for the next start."""
        live = [p for p in self.publishers.values() if not p.fenced]
        waits = [p.wait_acked(p.capture.commit_seq) for p in live]
        try:
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout_s)
        except TimeoutError:
            left = {p.tenant: p.capture.commit_seq - p.acked for p in live
                    if p.acked < p.capture.commit_seq}
            log.warning("stopping with commits not yet in the stream (published at the next "
                        "start): %s", left)

    async def stop(self) -> None:
        if self._front_door:
            await directory.withdraw(self._js, list(self.publishers),
                                     front_door=self._front_door)
        await cancel_and_wait(*self._tasks, *self._by_tenant.values())
        for publisher in self.publishers.values():
            publisher.capture.detach()
        if self.followers is not None and self._stops_followers:
            await self.followers.stop()
        await self._nc.close()


def _product_ids(tenant: Tenant) -> list[str]:
    """Every GTIN-14 and NMPA drug identifier the tenant registered."""
    from tracecore.masterdata import identifiers

    found: list[str] = []
    token = ""
    while True:
        products, token = tenant.ledger.products(_PRODUCTS_PAGE, token)
        found += [ident for product in products for ident in identifiers(product)]
        if not token:
            return found


def this_node() -> str:
    """This node's name in the directory: $PHARMATRACE_NODE, else the host name."""
    return os.environ.get("PHARMATRACE_NODE") or socket.gethostname()


def _refused_as_stale(exc: Exception) -> bool:
    """The stream refused a change because the subject moved past what this writer saw: a
    fence (or another writer) came in between."""
    return "wrong last sequence" in str(exc) or getattr(exc, "err_code", 0) == 10071


def _dupsort() -> tuple[str, ...]:
    from tracecore.ledger.store import DUPSORT

    return DUPSORT
