"""The directory as a front door reads it: a copy of the key-value bucket in memory, loaded
once and kept current by a watch on the bucket, so that routing a request costs two dictionary
look-ups and no round trip to NATS.

Until the copy is loaded (NATS unreachable at start) it knows no product, and every request is
answered where it arrives, as without replication.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.js.kv import KV_DEL, KV_PURGE

from replica_svc.directory import bucket, live, seen_mark
from replica_svc.streams import connect_long_lived
from tracerpc.tasks import cancel_and_wait

log = logging.getLogger("pharmatrace.directory")

_RETRY_S = 1.0
#: A watch that has delivered nothing this long is checked by starting it again.
_IDLE_S = 60.0


class DirectoryMirror:
    """Products' tenants and tenants' front doors, as the bucket last said."""

    def __init__(self) -> None:
        self._tenants: dict[str, str] = {}
        self._doors: dict[str, tuple[str, ...]] = {}
        # Each tenant entry's own "seen" map (earlier releases), and each address's mark.
        self._seen: dict[str, dict[str, int]] = {}
        self._marks: dict[str, int] = {}
        self._marked: dict[str, str] = {}   # mark's key -> its address
        self.loaded = asyncio.Event()
        self._nc: Client | None = None
        self._task: asyncio.Task[None] | None = None

    # -- routing.Directory -------------------------------------------------------------------

    def tenant_of(self, product_id: str) -> str:
        return self._tenants.get(product_id, "")

    def front_doors(self, tenant: str) -> Sequence[str]:
        doors = self._doors.get(tenant, ())
        seen = dict(self._seen.get(tenant, {}))
        for door in doors:
            mark = self._marks.get(door)
            if mark is not None:
                seen[door] = max(mark, seen.get(door, 0))
        return live(list(doors), seen) if seen else doors

    # -- keeping it current ------------------------------------------------------------------

    @classmethod
    def start(cls, url: str) -> DirectoryMirror:
        """A mirror that loads and follows the bucket in the background from now on."""
        mirror = cls()
        mirror._task = asyncio.create_task(mirror._follow_forever(url))
        return mirror

    def apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        """One entry of the bucket as the watch delivered it."""
        kind, _, name = key.partition(".")
        gone = operation in (KV_DEL, KV_PURGE) or value is None
        if kind == "seen":
            address = self._marked.pop(key, None)
            if address is not None:
                self._marks.pop(address, None)
            mark = None if gone else seen_mark(value)
            if mark is not None:
                self._marked[key] = mark[0]
                self._marks[mark[0]] = mark[1]
        elif kind == "product":
            if gone:
                self._tenants.pop(name, None)
            else:
                self._tenants[name] = value.decode() if value else ""
        elif kind == "tenant":
            doors: tuple[str, ...] = ()
            seen: dict[str, int] = {}
            if not gone and value:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    doc = json.loads(value)
                    doors = tuple(str(u) for u in doc.get("front_doors", []))
                    seen = {str(u): int(t) for u, t in doc.get("seen", {}).items()}
            if doors:
                self._doors[name] = doors
                self._seen[name] = seen
            else:
                self._doors.pop(name, None)
                self._seen.pop(name, None)

    async def _follow_forever(self, url: str) -> None:
        while True:
            try:
                if self._nc is None:
                    self._nc = await connect_long_lived(url, "pharmatrace-frontdoor")
                await self._follow(self._nc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("directory watch: %s; starting again", exc or type(exc).__name__)
                await asyncio.sleep(_RETRY_S)

    async def _follow(self, nc: Client) -> None:
        kv = await bucket(nc.jetstream())
        watcher = await kv.watchall()
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=_IDLE_S)
                except nats.errors.TimeoutError:
                    return
                if entry is None:  # everything the bucket held at the start is in
                    self.loaded.set()
                    continue
                self.apply(entry.key, entry.value, entry.operation)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
