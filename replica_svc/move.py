"""`tenant move`: a tenant's writes move to another node whose replica holds it, with a short
pause and no lost write.

The replica first catches up with the stream while writes go on; then the directory marks the
tenant as moving, and its writer answers new writes UNAVAILABLE (retry) within
``MOVES_EVERY_S``; writes already under way finish, each answered only once the stream holds
it (`--replicated-commit`). Then the promotion fences the old writer and waits until the
replica has applied everything up to the fence: every acknowledged write is on the new node.
A write the old writer commits after the fence is refused by the stream and never acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from replica_svc import directory
from replica_svc.promote import caught_up, promote, stream_head
from replica_svc.publisher import MOVES_EVERY_S
from replica_svc.streams import connect_once

#: Time for the writer to see the pause and for writes already under way to be acknowledged.
_SETTLE_S = 2 * MOVES_EVERY_S + 0.1


async def move(url: str, tenant: str, node: str, replica_data: Path,
               timeout_s: float) -> dict[str, object]:
    """Moves ``tenant``'s writes to ``node``, whose replica data is ``replica_data``. Returns
    the promotion's result with the pause in seconds (from the pause to the replica holding
    every write; the new writer serves once `serve` starts on that data)."""
    nc = await connect_once(url)
    try:
        js = nc.jetstream()
        head = await stream_head(js, tenant)
        await caught_up(replica_data, tenant, head, timeout_s)
        paused = time.monotonic()
        await directory.pause_for_move(js, tenant, node)
        try:
            await asyncio.sleep(_SETTLE_S)
            result = await promote(url, tenant, node, replica_data, timeout_s)
        except BaseException:
            await directory.resume(js, tenant)
            raise
    finally:
        await nc.close()
    result["paused_s"] = round(time.monotonic() - paused, 3)
    return result
