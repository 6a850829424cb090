"""The newest commit in a tenant's stream, read with the NATS client (for bench/replication.py)."""

from __future__ import annotations

import asyncio

import nats
from nats.js.errors import NotFoundError

from replica_svc.streams import SEQ, stream_name, subject


def newest_commit(url: str, tenant: str) -> int:
    async def read() -> int:
        nc = await nats.connect(url)
        try:
            last = await nc.jetstream().get_last_msg(stream_name(tenant), subject(tenant))
            return int((last.headers or {}).get(SEQ, 0))
        except NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(read())
