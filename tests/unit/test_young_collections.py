"""A serving loop collects the garbage small calls leave behind in small steps
(``tracerpc.runtime.young_collections``), not in one long pause at ``GC_YOUNG``, and leaves a
large call's objects to ``GC_YOUNG``."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator

import pytest

from tracerpc import runtime


def _cycles(n: int) -> None:
    """``n`` objects that only the collector frees, as a gRPC call leaves them."""
    for _ in range(n // 2):
        a: list[object] = []
        b = [a]
        a.append(b)


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """What each collection during the test freed, with the serving thresholds set."""
    thresholds = gc.get_threshold()
    gc.set_threshold(runtime.GC_YOUNG, 20, 100)
    freed: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            freed.append(info["collected"])

    gc.callbacks.append(noted)
    try:
        yield freed
    finally:
        gc.callbacks.remove(noted)
        gc.set_threshold(*thresholds)


def _beats(make: Callable[[], object], freed: list[int]) -> int:
    """Runs the beat for a few periods after ``make``; the young count ``make`` left."""

    async def run() -> int:
        beat = asyncio.get_running_loop().create_task(runtime.young_collections())
        gc.collect()
        freed.clear()
        make()
        piled = gc.get_count()[0]
        await asyncio.sleep(4 * runtime.YOUNG_BEAT_S)
        beat.cancel()
        return piled

    return asyncio.run(run())


def test_garbage_under_the_big_threshold_is_collected_on_the_beat(collections: list[int]
                                                                  ) -> None:
    """Cycles piled up past YOUNG_EARLY (far under GC_YOUNG, where the interpreter itself
    would collect) are freed within a few beats, and the young generation is small again."""
    piled = _beats(lambda: _cycles(3 * runtime.YOUNG_EARLY), collections)
    assert piled >= 3 * runtime.YOUNG_EARLY - 10
    assert sum(collections) >= 3 * runtime.YOUNG_EARLY - 10
    assert gc.get_count()[0] < runtime.YOUNG_EARLY


def test_a_large_calls_live_objects_are_left_to_the_big_threshold(collections: list[int]
                                                                  ) -> None:
    """Beyond YOUNG_LATE young objects (a pallet's answers being built), the beat does not
    collect: they are not walked and promoted again and again while the call runs."""
    alive: list[list[int]] = []
    piled = _beats(lambda: alive.extend([i] for i in range(2 * runtime.YOUNG_LATE)),
                   collections)
    assert piled > runtime.YOUNG_LATE
    assert collections == []
    assert len(alive) == 2 * runtime.YOUNG_LATE
