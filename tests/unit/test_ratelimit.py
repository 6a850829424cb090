"""Rate limits: each client gets its burst, then its rate, and is told when to come back."""

from __future__ import annotations

import pytest

from tracecore.errors import RateLimited, ResourceExhausted
from tracecore.ratelimit import RateLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_the_rate() -> None:
    """Two requests a second with bursts of 4: the fifth at once is refused, half a second later
    one more goes through."""
    clock = _Clock()
    limiter = RateLimiter(rate=2, burst=4, clock=clock)
    for _ in range(4):
        limiter.take("ipv4:10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        limiter.take("ipv4:10.0.0.1")
    assert refused.value.retry_after_ms == 501
    assert isinstance(refused.value, ResourceExhausted)
    clock.now += 0.5
    limiter.take("ipv4:10.0.0.1")


def test_one_client_over_its_limit_does_not_slow_another() -> None:
    """Buckets are per client name."""
    limiter = RateLimiter(rate=1, burst=1, clock=_Clock())
    limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")
    limiter.take("b")


def test_a_flood_of_new_clients_restarts_the_buckets_instead_of_growing() -> None:
    """Past max_clients names the buckets start over, so memory stays bounded."""
    limiter = RateLimiter(rate=1, burst=1, max_clients=3, clock=_Clock())
    limiter.take("a")
    for name in ("b", "c", "d"):
        limiter.take(name)
    limiter.take("a")  # forgotten with the others when "d" came
