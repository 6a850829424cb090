"""Replicated commit (`serve --replicated-commit`): a call is answered, and each streamed
message (a chunk of codes) sent, only once its tenant's stream holds every change committed
before it. Losing the writer's machine then loses no acknowledged write.

The wait covers all changes of the tenant committed so far, not only the caller's: the
publisher sends them in order anyway, and the call needs no way to learn which commit was its
own. Each call writes the one tenant it names (a client stream names it in every message); the
moves, fences and streams of the node's other tenants neither refuse it nor hold it up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from replica_svc.publisher import Replication, TenantPublisher
from replica_svc.read_your_writes import HEADER
from tracecore.errors import Unavailable

#: The tenants a call named, each with the publisher it was admitted under (None: the tenant
#: had none yet).
Written = dict[str, TenantPublisher | None]

#: How long a call waits for the stream before it is answered UNAVAILABLE (its write is
#: committed locally and will be published; a retry with the same request id is safe).
WAIT_S = 10.0


class ReplicatedCommit(grpc.aio.ServerInterceptor):
    """Holds every answer until the stream has acknowledged what was committed before it."""

    def __init__(self, wait_s: float = WAIT_S) -> None:
        self.replication: Replication | None = None
        self._wait_s = wait_s

    async def replicated(self, written: Written) -> None:
        if self.replication is None:
            return
        try:
            await asyncio.wait_for(self.replication.wait_replicated(written), self._wait_s)
        except TimeoutError:
            raise Unavailable("the write is committed but the replication stream has not "
                              "acknowledged it yet; retry (the same request id is safe)") from None

    def _refuse(self, written: Written, message: Any) -> None:
        """Refuses a call before it writes anything to the tenant ``message`` names while that
        tenant moves or after this node was fenced from it; notes the tenant in ``written``."""
        tenant = str(getattr(message, "tenant", "") or "")
        if tenant and tenant not in written:
            written[tenant] = (self.replication.refuse_writes(tenant)
                               if self.replication is not None else None)

    async def _refusing(self, written: Written, requests: AsyncIterator[Any]
                        ) -> AsyncIterator[Any]:
        """A client stream, each message refused or passed on as ``_refuse`` decides: the
        tenant of a client stream is known from its messages only."""
        async for message in requests:
            self._refuse(written, message)
            yield message

    def _tell_sequence(self, written: Written, context: Any) -> None:
        """Trailing metadata ``x-min-seq``: the stream sequence that holds this call's writes,
        for a read-your-writes read on a replica."""
        if self.replication is not None and len(written) == 1:
            seq = self.replication.stream_seq(next(iter(written)))
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
        client_stream = bool(handler.stream_unary or handler.stream_stream)

        def admit(written: Written, request: Any) -> Any:
            if client_stream:
                return self._refusing(written, request)
            self._refuse(written, request)
            return request

        if handler.unary_unary or handler.stream_unary:
            inner_unary = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: Any) -> Any:
                written: Written = {}
                response = await inner_unary(admit(written, request), context)
                await gate(written)
                self._tell_sequence(written, context)
                return response

            make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                    else grpc.stream_unary_rpc_method_handler)
            return make(unary, **kwargs)
        inner_stream = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
            written: Written = {}
            async for response in inner_stream(admit(written, request), context):
                await gate(written)
                yield response
            self._tell_sequence(written, context)

        make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler)
        return make(streaming, **kwargs)
