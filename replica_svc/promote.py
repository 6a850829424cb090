"""`tenant promote`: a replica's node becomes a tenant's writer, fenced against the old one.

The directory entry gets the next writer term (compare-and-set on its revision); then a fence
message goes onto the change subject. Every writer publishes each change expecting the
subject's last sequence it saw, so the old writer's next change after the fence is refused by
the stream itself, and the old writer steps down. Every change acknowledged before the fence
precedes it in the stream, so a replica that has applied up to the fence holds them all.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from replica_svc import directory
from replica_svc.streams import EPOCH, FENCE, MSG_ID, NODE, connect_once, stream_name, subject
from tracecore.errors import FailedPrecondition, NotFound

_POLL_S = 0.02


async def promote(url: str, tenant: str, node: str, replica_data: Path | None,
                  timeout_s: float) -> dict[str, object]:
    """Promotes ``node``; with ``replica_data``, waits until that replica has applied through
    the fence. Returns the term, the fence's stream sequence and the wait in seconds."""
    nc = await connect_once(url)
    try:
        js = nc.jetstream()
        await stream_head(js, tenant)
        term = await directory.promote(js, tenant, node)
        try:
            last = await js.get_last_msg(stream_name(tenant), subject(tenant))
            epoch = int((last.headers or {}).get(EPOCH, 0))
        except NotFoundError:
            epoch = 0
        ack = await js.publish(subject(tenant), b"", stream=stream_name(tenant), headers={
            FENCE: str(term), NODE: node, EPOCH: str(epoch), MSG_ID: f"fence:{term}"})
    finally:
        await nc.close()
    started = time.monotonic()
    if replica_data is not None:
        await caught_up(replica_data, tenant, ack.seq, timeout_s)
    return {"tenant": tenant, "node": node, "term": term, "fence_seq": ack.seq,
            "caught_up_s": round(time.monotonic() - started, 3)}


async def stream_head(js: JetStreamContext, tenant: str) -> int:
    """The last sequence of ``tenant``'s stream; NotFound when it has none (a tenant no writer
    published, or a typo), before anything names a writer for it."""
    try:
        return int((await js.stream_info(stream_name(tenant))).state.last_seq)
    except NotFoundError:
        raise NotFound(f"tenant {tenant} has no stream {stream_name(tenant)} on this NATS: no "
                       "writer ever published it (`serve --nats`), nothing to promote") from None


async def caught_up(data: Path, tenant: str, fence_seq: int, timeout_s: float) -> None:
    """Returns once the replica in ``data`` has applied ``tenant`` up to stream sequence
    ``fence_seq``; FailedPrecondition after ``timeout_s``."""
    from replica_svc.read_your_writes import applied

    deadline = time.monotonic() + timeout_s
    # The replica notes its position after every batch it applies (the status file only
    # every half second).
    while applied(data, tenant) < fence_seq:
        if time.monotonic() > deadline:
            raise FailedPrecondition(f"the replica in {data} has not applied tenant {tenant} "
                                     f"up to the fence (stream sequence {fence_seq}) within "
                                     f"{timeout_s:.0f} s")
        await asyncio.sleep(_POLL_S)
