"""Rate limits per client, for any transport: a token bucket for each client name."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tracecore.errors import RateLimited


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second with bursts of ``burst``.

    At most ``max_clients`` buckets are kept: a flood of new client names restarts every bucket
    rather than growing memory. ``clock`` is a monotonic clock in seconds.
    """

    def __init__(self, rate: float, burst: float, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        """Spend one request of ``client``'s; RateLimited, with when to retry, if it has none."""
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                raise RateLimited(int((1 - tokens) / self.rate * 1000) + 1)
            if len(self._buckets) >= self._max_clients and client not in self._buckets:
                self._buckets.clear()
            self._buckets[client] = (tokens - 1, now)
