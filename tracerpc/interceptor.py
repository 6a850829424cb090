"""The one interceptor: maps domain errors to gRPC status codes and counts every RPC."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from tracecore.errors import TraceError
from tracerpc.metrics import Metrics

log = logging.getLogger("pharmatrace.rpc")

Handler = grpc.RpcMethodHandler


def status_of(exc: TraceError) -> grpc.StatusCode:
    return grpc.StatusCode[exc.status]


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every handler once per method: TraceError becomes its status code with the message;
    anything else is logged with its traceback and answered INTERNAL without details."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._handlers: dict[str, Handler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = details.method
        try:
            return self._handlers[method]
        except KeyError:
            pass
        handler = await continuation(details)
        wrapped = self._wrap(method, handler) if handler is not None else None
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        name = method.rsplit("/", 1)[-1]
        latency = self._metrics.latency.labels(name)
        requests = self._metrics.requests
        counted: dict[str, Any] = {}

        def count(code: grpc.StatusCode, started: float) -> None:
            latency.observe(time.perf_counter() - started)
            child = counted.get(code.name)
            if child is None:
                child = counted[code.name] = requests.labels(name, code.name)
            child.inc()

        async def fail(exc: BaseException, context: grpc.aio.ServicerContext, started: float
                       ) -> None:
            if isinstance(exc, TraceError):
                code = status_of(exc)
                count(code, started)
                await context.abort(code, str(exc))
            log.error("unexpected error in %s", name, exc_info=exc)
            count(grpc.StatusCode.INTERNAL, started)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        def outcome(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
            code = context.code()
            return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    response = await inner(request, context)
                except (TraceError, Exception) as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        count(outcome(context), started)
                        raise
                    await fail(exc, context, started)
                count(outcome(context), started)
                return response

            factory = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                       else grpc.stream_unary_rpc_method_handler)
            return factory(unary, request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)

        inner_stream = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for response in inner_stream(request, context):
                    yield response
            except (TraceError, Exception) as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    count(outcome(context), started)
                    raise
                await fail(exc, context, started)
            count(outcome(context), started)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                   else grpc.stream_stream_rpc_method_handler)
        return factory(streaming, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
