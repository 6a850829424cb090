"""The ledger's writer lanes and group commit. Each tenant's writes run on one lane (a thread),
one at a time and in order; requests that arrive while its lane is busy share its next
transaction. Tenants on other lanes write meanwhile: each tenant's ledger is an LMDB environment
of its own, with its own write lock, so one tenant's long import does not hold up another's
writes (lanes are shared by hashing, so their number stays bounded)."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
Item = TypeVar("Item")
Out = TypeVar("Out")

#: Writer lanes of a process. More lanes than cores still pays: a lane mostly waits on fsync.
LANES = 8

#: The longest a bulk job waits, at one of its pauses, for other lanes' work to finish: it then
#: goes on whatever they do, so it keeps at least about half of the time it would have had.
MAKE_WAY_S = 0.002


class Writer:
    """Runs blocking ledger work off the event loop, so the loop keeps serving while it fsyncs:
    the work of one tenant on its lane, in the order it was given."""

    def __init__(self, lanes: int = LANES, make_way_s: float = MAKE_WAY_S) -> None:
        self._lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ledger-writer-{i}")
                       for i in range(lanes)]
        self._make_way_s = make_way_s
        self._busy = 0
        self._bulk = 0
        self._quiet = threading.Condition()
        self._on_lane = threading.local()

    def lane(self, tenant: str) -> int:
        """The lane of a tenant: the same in every run, so its writes keep their order."""
        return zlib.crc32(tenant.encode()) % len(self._lanes)

    async def run(self, tenant: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
                  ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lanes[self.lane(tenant)],
                                          lambda: self._running(fn, *args, **kwargs))

    def _running(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._quiet:
            self._busy += 1
        here = self._on_lane
        here.busy, here.bulk = True, False
        try:
            return fn(*args, **kwargs)
        finally:
            with self._quiet:
                self._busy -= 1
                self._bulk -= here.bulk
                self._quiet.notify_all()
            here.busy = here.bulk = False

    def make_way(self) -> None:
        """Called now and then by bulk work (a partner's document of thousands of events, read
        back or applied): while another lane has work, waits for it, up to ``MAKE_WAY_S``.

        Every thread of the process shares one interpreter lock. A thread that holds it for
        seconds of Python makes each step of another tenant's small write (its transaction, its
        fsync, its answer) wait its turn for the lock again and again; waiting here, with the
        lock released, lets those writes run as if alone, at the cost of bounded delay to the
        bulk job while they do."""
        here = self._on_lane
        if getattr(here, "busy", False) and not here.bulk:
            with self._quiet:
                here.bulk = True
                self._bulk += 1
                self._quiet.notify_all()  # a lane waiting for this one need wait no more
        if self.others_writing():
            with self._quiet:
                self._quiet.wait_for(lambda: not self.others_writing(), self._make_way_s)

    def others_writing(self) -> bool:
        """Whether a lane runs a write that is not bulk work (which ``make_way`` waits for;
        bulk work on two lanes does not wait for each other)."""
        return self._busy - self._bulk > 0

    def close(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True)


class Batcher(Generic[Item, Out]):
    """Group commit: items of one tenant submitted while its lane is busy are handed to
    ``apply`` together on the lane's next turn (one transaction, one fsync); each submitter gets
    its own result."""

    def __init__(self, writer: Writer, apply: Callable[[str, list[Item]], list[Out]]) -> None:
        self._writer = writer
        self._apply = apply
        self._pending: dict[str, list[tuple[Item, asyncio.Future[Out]]]] = {}
        self._draining: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    async def submit(self, tenant: str, item: Item) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(tenant, []).append((item, future))
        if tenant not in self._draining:
            self._draining.add(tenant)
            task = asyncio.ensure_future(self._drain(tenant))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, tenant: str) -> None:
        try:
            while batch := self._pending.pop(tenant, None):
                try:
                    results = await self._writer.run(tenant, self._apply, tenant,
                                                      [i for i, _ in batch])
                except Exception as exc:  # every waiting submitter answers with the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining.discard(tenant)
