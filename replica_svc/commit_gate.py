"""Replicated commit (`serve --replicated-commit`): a call is answered, and each streamed
message (a chunk of codes) sent, only once the tenants' streams hold every change committed
before it. Losing the writer's machine then loses no acknowledged write.

The wait covers all changes committed so far, not only the caller's: the publisher sends them
in order anyway, and the call needs no way to learn which commit was its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from replica_svc.publisher import Replication
from replica_svc.read_your_writes import HEADER
from tracecore.errors import Unavailable

#: How long a call waits for the stream before it is answered UNAVAILABLE (its write is
#: committed locally and will be published; a retry with the same request id is safe).
WAIT_S = 10.0


class ReplicatedCommit(grpc.aio.ServerInterceptor):
    """Holds every answer until the stream has acknowledged what was committed before it."""

    def __init__(self, wait_s: float = WAIT_S) -> None:
        self.replication: Replication | None = None
        self._wait_s = wait_s

    async def replicated(self) -> None:
        if self.replication is None:
            return
        self.replication.refuse_if_fenced()
        try:
            await asyncio.wait_for(self.replication.wait_replicated(), self._wait_s)
        except TimeoutError:
            raise Unavailable("the write is committed but the replication stream has not "
                              "acknowledged it yet; retry (the same request id is safe)") from None

    def _refuse(self, request: Any) -> None:
        """Refuses a call before it writes anything while its tenant moves or after this node
        was fenced (a client stream names no tenant up front: every tenant is checked)."""
        if self.replication is not None:
            self.replication.refuse_writes(str(getattr(request, "tenant", "") or ""))

    def _tell_sequence(self, request: Any, context: Any) -> None:
        """Trailing metadata ``x-min-seq``: the stream sequence that holds this call's writes,
        for a read-your-writes read on a replica."""
        tenant = str(getattr(request, "tenant", "") or "")
        if self.replication is not None and tenant:
            seq = self.replication.stream_seq(tenant)
            if seq:
                context.set_trailing_metadata(((HEADER, str(seq)),))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(details)
        if handler is None:
            return None
        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        gate = self.replicated
        if handler.unary_unary or handler.stream_unary:
            inner_unary = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: Any) -> Any:
                self._refuse(request)
                response = await inner_unary(request, context)
                await gate()
                self._tell_sequence(request, context)
                return response

            make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                    else grpc.stream_unary_rpc_method_handler)
            return make(unary, **kwargs)
        inner_stream = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
            self._refuse(request)
            async for response in inner_stream(request, context):
                await gate()
                yield response
            self._tell_sequence(request, context)

        make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler)
        return make(streaming, **kwargs)
