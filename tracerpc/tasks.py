"""Ending a service's background asyncio tasks when it stops."""

from __future__ import annotations

import asyncio
from typing import Any

#: How long a task cancelled has to end before it is cancelled again.
_AGAIN_S = 1.0


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancels ``tasks`` and returns once every one has ended; then raises the error one ended
    with, if any did. Until Python 3.12, ``asyncio.wait_for`` (which nats-py awaits every request
    and message with) drops a cancellation that arrives as its result comes in, and the task
    carries on: so one still running ``_AGAIN_S`` later is cancelled again."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_AGAIN_S)
    errors = [error for task in tasks
              if not task.cancelled() and (error := task.exception()) is not None]
    if errors:
        raise errors[0]
