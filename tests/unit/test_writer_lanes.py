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



def test_bulk_work_makes_way_for_another_tenants_write_until_it_is_done() -> None:
    """A large import's lane, at one of its pauses, lets another tenant's write finish before
    it goes on."""
    writer = Writer(make_way_s=60)
    a, b = _two_tenants_on_two_lanes(writer)
    b_running, b_go = threading.Event(), threading.Event()
    seen: list[str] = []

    def small_write() -> None:
        b_running.set()
        b_go.wait(30)
        seen.append("b written")

    def bulk() -> None:
        b_running.wait(30)
        seen.append(f"others writing: {writer.others_writing()}")
        b_go.set()
        writer.make_way()
        seen.append("bulk goes on")

    async def scenario() -> None:
        await asyncio.gather(writer.run(b, small_write), writer.run(a, bulk))

    try:
        asyncio.run(scenario())
    finally:
        b_go.set()
        writer.close()
    assert seen == ["others writing: True", "b written", "bulk goes on"]


def test_two_bulk_jobs_do_not_wait_for_each_other() -> None:
    """Two tenants' imports at once: neither counts the other as a write to make way for (so
    ``make_way`` returns at once), while a small write on a third lane would be."""
    writer = Writer(make_way_s=60)
    a, b = _two_tenants_on_two_lanes(writer)
    c = next(n for n in (f"tenant-{i}" for i in range(100))
             if writer.lane(n) not in (writer.lane(a), writer.lane(b)))
    b_paused, release_b, a_bulk, c_running, release_c = (threading.Event() for _ in range(5))
    seen: list[str] = []

    def bulk_b() -> None:
        writer.make_way()
        b_paused.set()
        release_b.wait(30)

    def small_c() -> None:
        c_running.set()
        release_c.wait(30)

    def bulk_a() -> None:
        writer.make_way()
        b_paused.wait(30)
        seen.append(f"beside bulk b, others writing: {writer.others_writing()}")
        release_b.set()

    def bulk_a_beside_c() -> None:
        writer.make_way()  # nothing else runs yet: returns at once, and marks a as bulk work
        a_bulk.set()
        c_running.wait(30)
        seen.append(f"beside small c, others writing: {writer.others_writing()}")
        release_c.set()

    async def scenario() -> None:
        await asyncio.gather(writer.run(b, bulk_b), writer.run(a, bulk_a))
        beside_c = asyncio.ensure_future(writer.run(a, bulk_a_beside_c))
        await asyncio.to_thread(a_bulk.wait, 30)  # c's write starts once a is bulk work
        await asyncio.gather(writer.run(c, small_c), beside_c)

    try:
        asyncio.run(scenario())
    finally:
        release_b.set()
        release_c.set()
        writer.close()
    assert seen == ["beside bulk b, others writing: False",
                    "beside small c, others writing: True"]
