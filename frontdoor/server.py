"""Serving the front door inside a verification worker: uvicorn (httptools, on the worker's
uvloop) on a socket every worker binds with SO_REUSEPORT, stopped by the worker itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: A client that has not sent a whole request head this long after starting it gets 408.
HEADER_TIMEOUT_S = 10.0
_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: 45\r\nconnection: close\r\n\r\n"
                   b"the request head did not arrive in time; bye\n")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that the other workers can bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _OneWrite:
    """A connection's transport that holds an answer's status line and headers until its body
    is written, so that both leave in one socket write (one system call, one TCP segment for a
    page) instead of two. A held head leaves at the latest when the answer is complete or the
    connection closes; interim answers (1xx) are never held, their client waits for them."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held = b""

    def write(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
        elif data.startswith(b"HTTP/1.1 ") and data[9:10] != b"1" and data.endswith(b"\r\n\r\n"):
            self._held = data
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _protocol(header_timeout_s: float) -> type[HttpToolsProtocol]:
    class Protocol(HttpToolsProtocol):
        """httptools' protocol writing each answer at once (``_OneWrite``), with a deadline for
        the request head, so that a client sending it a byte at a time is answered 408 and its
        connection closed (it never held up others: the event loop serves them meanwhile)."""

        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_OneWrite(transport))  # type: ignore[arg-type]
            self._arm()

        def on_response_complete(self) -> None:
            self.transport.flush()  # type: ignore[attr-defined]
            super().on_response_complete()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.write(_TIMEOUT_ANSWER)
                self.transport.close()

    return Protocol


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The worker owns SIGTERM and SIGINT and stops this server itself.
        yield


@dataclass
class RunningHttp:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self, grace_s: float) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.task), grace_s + 1)


async def start(app: ASGIApp, sock: socket.socket, *, tls: tuple[Path, Path] | None = None,
                header_timeout_s: float = HEADER_TIMEOUT_S, grace_s: float = 5.0
                ) -> RunningHttp:
    """Serves ``app`` on ``sock`` in this event loop until ``RunningHttp.stop``."""
    config = uvicorn.Config(
        app, http=_protocol(header_timeout_s), loop="none", lifespan="off", log_config=None,
        access_log=False, server_header=False, timeout_keep_alive=5,
        timeout_graceful_shutdown=int(max(1, grace_s)),
        ssl_certfile=str(tls[0]) if tls else None, ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the HTTP server stopped while starting")
        await asyncio.sleep(0.01)
    return RunningHttp(server, task, sock.getsockname()[1])
