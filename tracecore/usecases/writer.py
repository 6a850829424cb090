"""The ledger's writer thread and group commit: all LMDB writes of this process run on one
thread, one at a time; requests that arrive while it is busy share its next transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
Item = TypeVar("Item")
Out = TypeVar("Out")


class Writer:
    """Runs blocking ledger work off the event loop, so the loop keeps serving while it fsyncs."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Batcher(Generic[K, Item, Out]):
    """Group commit: items submitted while the writer is busy are handed to ``apply`` together
    on its next turn (one transaction, one fsync); each submitter gets its own result."""

    def __init__(self, writer: Writer, apply: Callable[[K, list[Item]], list[Out]]) -> None:
        self._writer = writer
        self._apply = apply
        self._pending: dict[K, list[tuple[Item, asyncio.Future[Out]]]] = {}
        self._draining: set[K] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    async def submit(self, key: K, item: Item) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))
        if key not in self._draining:
            self._draining.add(key)
            task = asyncio.ensure_future(self._drain(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, key: K) -> None:
        try:
            while batch := self._pending.pop(key, None):
                try:
                    results = await self._writer.run(self._apply, key, [i for i, _ in batch])
                except Exception as exc:  # every waiting submitter answers with the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining.discard(key)
