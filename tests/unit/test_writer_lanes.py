"""The writer lanes: one tenant's writes in order, another tenant's beside them."""

from __future__ import annotations

import asyncio
import threading

from tracecore.usecases.writer import Writer


def _two_tenants_on_two_lanes(writer: Writer) -> tuple[str, str]:
    names = [f"tenant-{i}" for i in range(100)]
    a = names[0]
    b = next(n for n in names if writer.lane(n) != writer.lane(a))
    return a, b


def test_another_tenants_write_runs_while_one_tenants_write_is_held() -> None:
    """While tenant A's write is held up (a long import), tenant B's write completes."""
    writer = Writer()
    a, b = _two_tenants_on_two_lanes(writer)
    release = threading.Event()

    async def scenario() -> list[str]:
        done: list[str] = []
        held = asyncio.ensure_future(writer.run(a, lambda: release.wait(30) and done.append(a)))
        await writer.run(b, done.append, b)
        release.set()
        await held
        return done

    try:
        assert asyncio.run(scenario()) == [b, a]
    finally:
        release.set()
        writer.close()


def test_one_tenants_writes_run_one_at_a_time_in_the_order_given() -> None:
    """A tenant's writes never overlap and keep the order they were given in."""
    writer = Writer()
    running: list[int] = []
    order: list[int] = []
    overlaps: list[int] = []

    def work(n: int) -> None:
        running.append(n)
        if len(running) > 1:
            overlaps.append(n)
        order.append(n)
        running.remove(n)

    async def scenario() -> None:
        await asyncio.gather(*(writer.run("acme", work, n) for n in range(200)))

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert order == list(range(200)) and not overlaps
    assert writer.lane("acme") == Writer().lane("acme")
