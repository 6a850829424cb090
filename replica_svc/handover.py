"""A running replica becoming the writer of its tenants once the directory names its node
(`tenant move`, `tenant promote`), without a restart: its verification workers keep serving
the copies, the issuance service starts in the same process on the same data.

It waits for the promotion of every tenant it follows (a writer writes every tenant of its data
directory, so a replica following a tenant it is not promoted for keeps following), then for the
fence of each to be applied (so the copy holds every acknowledged write), then stops following
and closes the copies; the caller then starts the writer on the data directory.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from replica_svc import directory
from replica_svc.promote import caught_up
from replica_svc.read_your_writes import note_applied
from replica_svc.streams import FENCE, stream_name, subject
from tracecore.errors import FailedPrecondition

log = logging.getLogger("pharmatrace.replica")

#: How often the directory is read for a promotion of this node.
WATCH_EVERY_S = 0.1
#: How long the fence of a promotion may take to be applied once it is in the stream.
_FENCE_APPLIED_S = 60.0


async def wait_until_promoted(js: JetStreamContext, root: Path, tenants: list[str],
                              node: str) -> dict[str, int]:
    """Returns once ``node`` is the writer of every one of ``tenants`` and the copies in
    ``root`` have applied each promotion's fence; the fences' stream sequences by tenant."""
    while True:
        try:
            fences = await promotion_fences(js, tenants, node)
        except Exception as exc:  # NATS away for a moment: asked again
            log.debug("looking for a promotion failed: %s", exc)
            fences = None
        if fences is not None:
            try:
                for tenant, seq in fences.items():
                    await caught_up(root, tenant, seq, _FENCE_APPLIED_S)
            except FailedPrecondition as exc:  # still behind: the copy keeps applying
                log.warning("promoted, but %s; waiting on", exc.message)
                continue
            return fences
        await asyncio.sleep(WATCH_EVERY_S)


async def promotion_fences(js: JetStreamContext, tenants: list[str],
                           node: str) -> dict[str, int] | None:
    """The stream sequence of each tenant's fence of ``node``'s term, or None until every
    tenant names ``node`` writer and has the fence in its stream."""
    fences = {}
    for tenant in tenants:
        writer, term = await directory.writer_node(js, tenant)
        if writer != node:
            return None
        try:
            last = await js.get_last_msg(stream_name(tenant), subject(tenant))
        except NotFoundError:
            return None
        if (last.headers or {}).get(FENCE) != str(term):
            return None  # the promotion has named the node; its fence follows
        fences[tenant] = int(last.seq or 0)
    return fences


async def note_published(root: Path, stream_seq: dict[str, int]) -> None:
    """Keeps the notes read-your-writes reads (``x-min-seq``) at what the writer has published,
    as the replica kept them at what it applied."""
    for tenant, seq in stream_seq.items():
        if seq:
            await asyncio.to_thread(note_applied, root, tenant, seq)
