"""An open-loop HTTP/1.1 load at a fixed rate, for latency at a given load: requests are due at
fixed times whether or not earlier ones were answered, and a latency runs from when its
request was due (a slow server cannot slow the load down and hide its own delay).

Built to cost the client little CPU, so that on a small machine the client does not take the
cores the server needs: its own uvloop event loop, keep-alive connections, every request's
bytes made before the clock starts, answers read by their Content-Length with no HTTP
library, timers set once per request, no garbage collection while it runs. It reports what
it spent itself (``client_cores``) and how late it sent (``send_lag``): a figure is the
server's only when both are small.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import resource
import time
from dataclasses import dataclass, field

import uvloop


@dataclass
class OpenLoopRun:
    """What one run measured; times in seconds from the first due time, latencies in ms."""

    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(when due, latency) of each answer."""
    send_lags_ms: list[float] = field(default_factory=list)
    """How late each request left the client: its own delay, not the server's."""
    wrong_status: int = 0
    unanswered: int = 0
    client_cores: float = 0.0
    """CPU this process spent during the run, in cores (1.0: one core all the time)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, load: _Load) -> None:
        self._load = load
        self._buffer = b""
        self._due = 0.0
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self, request: bytes, due: float) -> None:
        self._due = due
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        start = buffer.find(b"content-length:", 0, head_end)
        if start < 0:
            start = buffer.lower().find(b"content-length:", 0, head_end)
        line_end = buffer.find(b"\r\n", start)
        length = int(buffer[start + 15:line_end])
        end = head_end + 4 + length
        if len(buffer) < end:
            return
        self._buffer = buffer[end:]
        self._load.answered(self, buffer[9:12] == b"200", self._due)


class _Load:
    def __init__(self, requests: list[bytes], rate: float, seconds: float) -> None:
        self.requests = requests
        self.rate = rate
        self.total = int(rate * seconds)
        self.run = OpenLoopRun()
        self.idle: collections.deque[_Connection] = collections.deque()
        self.waiting: collections.deque[tuple[int, float]] = collections.deque()
        self.outstanding = 0
        self.start = 0.0
        self.finished: asyncio.Future[None] | None = None

    def due(self, index: int) -> None:
        """Request ``index`` is due now (its timer fired)."""
        due = self.start + index / self.rate
        if self.idle:
            self._send(self.idle.popleft(), index, due)
        else:
            self.waiting.append((index, due))

    def _send(self, connection: _Connection, index: int, due: float) -> None:
        self.run.send_lags_ms.append((time.perf_counter() - due) * 1000)
        connection.send(self.requests[index % len(self.requests)], due)

    def answered(self, connection: _Connection, ok: bool, due: float) -> None:
        now = time.perf_counter()
        self.run.latencies.append((due - self.start, (now - due) * 1000))
        if not ok:
            self.run.wrong_status += 1
        self.outstanding -= 1
        if self.waiting:
            index, waiting_due = self.waiting.popleft()
            self._send(connection, index, waiting_due)
        else:
            self.idle.append(connection)
        if self.outstanding == 0 and self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


async def _run(host: str, port: int, requests: list[bytes], rate: float, seconds: float,
               connections: int) -> OpenLoopRun:
    loop = asyncio.get_running_loop()
    load = _Load(requests, rate, seconds)
    opened = []
    for _ in range(connections):
        _, connection = await loop.create_connection(lambda: _Connection(load), host, port)
        opened.append(connection)
        load.idle.append(connection)
    load.finished = loop.create_future()
    load.outstanding = load.total
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    # The loop's clock and perf_counter differ: due times are kept in perf_counter's, and each
    # timer is set on the loop's clock at the same distance from now.
    load.start = time.perf_counter() + 0.1
    offset = loop.time() - time.perf_counter()
    for index in range(load.total):
        loop.call_at(load.start + index / rate + offset, load.due, index)
    try:
        await asyncio.wait_for(load.finished, seconds + 30)
    except TimeoutError:
        load.run.unanswered = load.outstanding
    elapsed = time.perf_counter() - load.start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    load.run.client_cores = (usage.ru_utime + usage.ru_stime - cpu_before) / elapsed
    for connection in opened:
        if connection.transport is not None:
            connection.transport.close()
    return load.run


def open_loop(host: str, port: int, requests: list[bytes], rate: float, seconds: float,
              connections: int = 32) -> OpenLoopRun:
    """``requests`` (whole HTTP/1.1 requests, sent in turn) at ``rate`` a second for
    ``seconds``, over ``connections`` keep-alive connections on a uvloop event loop of its
    own; a request due while every connection waits for an answer waits for the first free
    one, its latency still counted from when it was due."""
    # A full collection of this process's heap (the fixture's codes, the requests) stops the
    # client for tens of ms, due requests pile up and their latency is the client's own: the
    # run allocates little, so it goes without collections.
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(host, port, requests, rate, seconds, connections))
    finally:
        gc.enable()


def get_requests(host: str, port: int, paths: list[str], headers: dict[str, str]) -> list[bytes]:
    """GET requests of ``paths`` with ``headers``, as bytes ready to send."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
            for path in paths]
