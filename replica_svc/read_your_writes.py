"""Read-your-writes on a replica: a client that passes the stream sequence of its last write
(gRPC metadata ``x-min-seq``, HTTP header ``X-Min-Seq: TENANT=SEQ``), as the writer returned it
in its answer's trailing metadata with `--replicated-commit`, gets its answer only once the
replica has applied that far; after ``WAIT_S`` it is answered UNAVAILABLE (HTTP 503) naming how
far behind the replica is.

The replica process notes each tenant's applied stream sequence in a small file beside the
copies after every applied batch (after the copy's transaction commits, so the note never runs
ahead of the copy); the verification workers read it. It also notes which tenants it follows:
a sequence asked of a tenant it does not follow is answered at once, NOT_FOUND (HTTP 421
Misdirected Request), since no wait would bring it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from tracecore.errors import NotFound, Unavailable

HEADER = "x-min-seq"
#: How long a call waits for the replica to apply the sequence asked for.
WAIT_S = 2.0
_POLL_S = 0.01


_FOLLOWING = ".following"


class NotFollowed(NotFound):
    """The read names a tenant this replica does not follow: read from a node that holds it."""


class Behind(Unavailable):
    """The replica has not applied the sequence asked for in time: retry, or read elsewhere."""


def note_following(root: Path, tenants: list[str]) -> None:
    """Records the tenants the replica in ``root`` follows."""
    path = root / _FOLLOWING
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text("".join(f"{t}\n" for t in tenants))
    os.replace(tmp, path)


def follows(root: Path, tenant: str) -> bool:
    """Whether the replica in ``root`` follows ``tenant`` (a replica of an earlier release,
    which noted nothing, is taken to follow every tenant)."""
    try:
        return tenant in (root / _FOLLOWING).read_text().split()
    except FileNotFoundError:
        return True


def note_path(root: Path, tenant: str) -> Path:
    return root / f".applied-{tenant}"


def note_applied(root: Path, tenant: str, stream_seq: int) -> None:
    """Records that the copy of ``tenant`` holds every change up to ``stream_seq``."""
    path = note_path(root, tenant)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(str(stream_seq))
    os.replace(tmp, path)


def applied(root: Path, tenant: str) -> int:
    try:
        return int(note_path(root, tenant).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


class ReadYourWrites(grpc.aio.ServerInterceptor):
    """Holds a unary call that names ``x-min-seq`` until its tenant's copy has applied it."""

    def __init__(self, root: Path, wait_s: float = WAIT_S) -> None:
        self._root = root
        self._wait_s = wait_s

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(details)
        if handler is None or not handler.unary_unary:
            return handler
        inner = handler.unary_unary

        # The metadata is read per call: the server keeps the handler returned here for every
        # later call of the method.
        async def unary(request: Any, context: Any) -> Any:
            wanted = dict(context.invocation_metadata() or ()).get(HEADER)
            tenant = str(getattr(request, "tenant", "") or "")
            if wanted is not None and tenant:
                try:
                    min_seq = int(wanted)
                except ValueError:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"{HEADER} must be a stream sequence number, not "
                                        f"{wanted!r}")
                try:
                    await self.wait(tenant, min_seq)
                except (NotFollowed, Behind) as exc:
                    await context.abort(getattr(grpc.StatusCode, exc.status), exc.message)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    async def wait(self, tenant: str, min_seq: int) -> None:
        """Returns once the copy has applied ``min_seq``; NotFollowed at once when this replica
        does not follow ``tenant``, Behind after the wait."""
        if not follows(self._root, tenant):
            raise NotFollowed(f"this replica does not follow tenant {tenant} ({HEADER}): read "
                              "from a node that holds it (`pharmatrace directory route`)")
        deadline = time.monotonic() + self._wait_s
        while True:
            have = applied(self._root, tenant)
            if have >= min_seq:
                return
            if time.monotonic() >= deadline:
                raise Behind(f"this replica has applied tenant {tenant} up to stream sequence "
                             f"{have}, {min_seq - have} behind the {min_seq} asked for "
                             f"({HEADER}) after waiting {self._wait_s:.1f} s; retry, or read "
                             "from the writer")
            await asyncio.sleep(_POLL_S)


class HttpReadYourWrites:
    """The same for the HTTP front door: a request with the header ``X-Min-Seq: TENANT=SEQ``
    is served once the copy of TENANT holds SEQ, else answered 503 naming the lag."""

    def __init__(self, app: Any, root: Path, wait_s: float = WAIT_S) -> None:
        self._app = app
        self._rpc = ReadYourWrites(root, wait_s)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        wanted = ""
        if scope["type"] == "http":
            wanted = dict(scope["headers"]).get(HEADER.encode(), b"").decode("latin-1")
        if wanted:
            tenant, _, seq = wanted.rpartition("=")
            if not tenant or not seq.isdigit():
                await _problem(send, 400, f"{HEADER} must read TENANT=SEQUENCE, not {wanted!r}")
                return
            try:
                await self._rpc.wait(tenant, int(seq))
            except NotFollowed as exc:
                # 421 Misdirected Request: this node cannot answer for the tenant, another can;
                # not 404, which would say the code or tenant does not exist.
                await _problem(send, 421, exc.message, retry=False)
                return
            except Behind as exc:
                await _problem(send, 503, exc.message)
                return
        await self._app(scope, receive, send)


async def _problem(send: Any, status: int, detail: str, *, retry: bool = True) -> None:
    import json

    body = json.dumps({"status": status, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"),
        *([(b"retry-after", b"1")] if retry else []),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
