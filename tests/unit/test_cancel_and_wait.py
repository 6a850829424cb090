"""tracerpc.tasks.cancel_and_wait: a background task stops even when the cancellation arrives
as the message it awaits comes in, which ``asyncio.wait_for`` (Python 3.11) then drops."""

from __future__ import annotations

import asyncio

import pytest

from tracerpc.tasks import cancel_and_wait

pytestmark = pytest.mark.timeout(30)


def test_a_task_cancelled_as_its_message_arrives_still_ends() -> None:
    async def main() -> asyncio.Task[None]:
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def consume() -> None:
            while True:
                await asyncio.wait_for(queue.get(), 5)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # the task waits for its first message
        queue.put_nowait(1)
        await cancel_and_wait(task)
        return task

    task = asyncio.run(main())
    assert task.cancelled()


def test_the_error_a_task_ended_with_is_raised_once_every_task_has_ended() -> None:
    async def main() -> tuple[asyncio.Task[None], asyncio.Task[None]]:
        async def fail() -> None:
            raise ValueError("the stream is gone")

        failing = asyncio.create_task(fail())
        waiting = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="the stream is gone"):
            await cancel_and_wait(failing, waiting)
        return failing, waiting

    failing, waiting = asyncio.run(main())
    assert failing.done() and waiting.cancelled()
