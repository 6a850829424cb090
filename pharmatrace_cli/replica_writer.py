"""`pharmatrace replica --write-when-promoted`: once the directory names this node the writer of
the tenants the replica follows (`tenant move`, `tenant promote`), the issuance service starts
in the running replica on its data, so a move needs no restart of anything."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracerpc.tasks import cancel_and_wait

log = logging.getLogger("pharmatrace.replica")

#: How often read-your-writes notes follow what the new writer has published.
_NOTE_EVERY_S = 0.05


@dataclass
class ReplicaWriter:
    """The writer started inside a replica, once it was."""

    codegen: Any = None
    replication: Any = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace_s: float) -> None:
        await cancel_and_wait(*self.tasks)
        if self.codegen is not None:
            await self.codegen.quiesce(grace_s)
        if self.replication is not None:
            await self.replication.drain(grace_s)
            await self.replication.stop()
        if self.codegen is not None:
            self.codegen.close()


def start(args: argparse.Namespace, data: Path, replica: Any, verify: str,
          front_door: str) -> ReplicaWriter:
    """Waits, in the background, for this node's promotion, then writes its tenants."""
    writer = ReplicaWriter()
    writer.tasks.append(asyncio.create_task(_take_over(args, data, replica, verify, front_door,
                                                       writer)))
    return writer


async def _take_over(args: argparse.Namespace, data: Path, replica: Any, verify: str,
                     front_door: str, writer: ReplicaWriter) -> None:
    import time

    from codegen_svc import app as codegen_app
    from replica_svc.commit_gate import ReplicatedCommit
    from replica_svc.handover import note_published, wait_until_promoted
    from replica_svc.publisher import Replication, this_node
    from tracerpc.metrics import Metrics
    from verify_svc.workers import key_source

    tenants = list(replica.tenants)
    node = this_node()
    fences = await wait_until_promoted(replica.js, data, tenants, node)
    started = time.monotonic()
    try:
        await replica.release()
        gate = ReplicatedCommit()
        writer.codegen = await codegen_app.start(
            data, key_source(args.dev), f"{args.host}:{args.issue_port}", Metrics(), tls=None,
            authenticate=not args.dev, interceptors=[gate])
        writer.replication = gate.replication = await Replication.start(
            args.nats, writer.codegen.data, followers=replica)
        issue = f"{args.host}:{writer.codegen.port}"
        await writer.replication.announce(issue, verify, front_door)
    except Exception:
        log.exception("node %s was promoted but could not start writing; start `serve` on %s",
                      node, data)
        return
    log.info("node %s writes tenants %s from their fences (stream %s): issuance %s, %.3f s "
             "after the promotion was applied", node, ", ".join(tenants),
             ", ".join(map(str, fences.values())), issue, time.monotonic() - started)
    while True:
        with contextlib.suppress(OSError):  # a full disk: the note moves on the next round
            await note_published(data, {t: writer.replication.stream_seq(t) for t in tenants})
        await asyncio.sleep(_NOTE_EVERY_S)
