"""The one interceptor: authenticates and authorises each call, maps domain errors to gRPC
status codes, audits writes and counts every RPC."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf.message import Message

from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument, PermissionDenied, TraceError, Unauthenticated
from tracerpc.authz import CALLER, WRITES, Authorizer, error_metadata
from tracerpc.metrics import Metrics

log = logging.getLogger("pharmatrace.rpc")

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    # What grpc.aio calls for each kind of method. grpc's stubs type handlers for the
    # synchronous server, so the interceptor states the asynchronous shapes it relies on.
    _Unary = Callable[[Any, Context], Awaitable[Any]]
    # A streaming method is an async generator, or a coroutine that sends with
    # ``context.write`` (as grpc's own aio health servicer's Watch does).
    _Streaming = Callable[[Any, Context], AsyncIterator[Any] | Awaitable[None]]

#: Longest error message sent: messages may quote the request, and a status message travels
#: percent-encoded in a trailer that clients refuse past 8 to 16 KiB.
MAX_MESSAGE_CHARS = 400


def status_of(exc: TraceError) -> grpc.StatusCode:
    return grpc.StatusCode[exc.status]


def _bounded(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler once per method. A TraceError becomes its status code with its
    message; anything else is logged with its traceback and answered INTERNAL, no details."""

    def __init__(self, metrics: Metrics, authorizer: Authorizer | None = None) -> None:
        self._metrics = metrics
        self._authorizer = authorizer
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
        return self.wrap(method, await continuation(details))

    def wrap(self, method: str, handler: Handler | None) -> Handler | None:
        """``handler`` of ``method`` wrapped (once: later calls get the same wrapper)."""
        try:
            return self._handlers[method]
        except KeyError:
            pass
        wrapped = self._wrap(method, handler) if handler is not None else None
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        name = method.rsplit("/", 1)[-1]
        latency = self._metrics.latency.labels(name)
        requests = self._metrics.requests
        rate_limited = self._metrics.rate_limited
        refusals = self._metrics.refusals
        slowed = self._metrics.slowed
        authorizer = self._authorizer
        counted: dict[str, Any] = {}

        def count(code: grpc.StatusCode, started: float) -> None:
            latency.observe(time.perf_counter() - started)
            child = counted.get(code.name)
            if child is None:
                child = counted[code.name] = requests.labels(name, code.name)
            child.inc()

        # Only a write leaves an audit record: a read's call skips ``record`` altogether.
        audited = authorizer is not None and method in WRITES

        async def hold(context: grpc.aio.ServicerContext[Any, Any]) -> None:
            """Holds a call from an address slowed down after a burst of refusals."""
            delay = authorizer.delay_ms(context) if authorizer is not None else 0
            if delay:
                slowed.inc()
                await asyncio.sleep(delay / 1000)

        def answered(context: grpc.aio.ServicerContext[Any, Any], started: float
                     ) -> grpc.StatusCode:
            """Counts a call that returned (or aborted itself); its status code."""
            code = context.code()
            code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
            count(code, started)
            return code

        async def finish(context: grpc.aio.ServicerContext[Any, Any], started: float,
                         principal: Principal | None, request: Message | None,
                         exc: BaseException | None, at_door: bool = False) -> None:
            """Counts, audits, and turns an exception into the call's status; ``at_door``: the
            exception came from authentication or authorisation, before the handler ran."""
            if exc is None or isinstance(exc, grpc.aio.AbortError):
                code = answered(context, started)
                if audited and authorizer is not None:
                    await authorizer.record(method, principal, request, code)
                if exc is not None:
                    raise exc
                return
            if (at_door and authorizer is not None
                    and isinstance(exc, (Unauthenticated, PermissionDenied))):
                refusal = await authorizer.refused(method, principal, request, context, exc)
                refusals.labels(refusal.reason.value).inc()
            if isinstance(exc, TraceError):
                code, message = status_of(exc), _bounded(str(exc))
                trailing = error_metadata(exc)
                if trailing:
                    rate_limited.inc()
                    context.set_trailing_metadata(trailing)
            else:
                log.error("unexpected error in %s", name, exc_info=exc)
                code, message = grpc.StatusCode.INTERNAL, "internal error"
            count(code, started)
            if authorizer is not None:
                await authorizer.record(method, principal, request, code)
            await context.abort(code, message)

        def authenticate(request: Message, context: grpc.aio.ServicerContext[Any, Any]
                         ) -> Principal | None:
            if request is _UNDECODABLE:
                raise InvalidArgument(f"is not a valid {name} request message", field="request")
            return (authorizer.authenticate(method, request, context) if authorizer is not None
                    else None)

        def authorize(request: Message, principal: Principal | None) -> None:
            if authorizer is not None:
                authorizer.authorize(method, request, principal)
            CALLER.set(principal)

        class _Guarded:
            """A client stream whose first message authorises the call and whose every message
            stays within the caller's tenant."""

            def __init__(self, stream: AsyncIterator[Message],
                         context: grpc.aio.ServicerContext[Any, Any]) -> None:
                self.stream = stream
                self.context = context
                self.principal: Principal | None = None
                self.first: Message | None = None
                self.admitted = False

            def __aiter__(self) -> _Guarded:
                return self

            async def __anext__(self) -> Message:
                try:
                    message = await self.stream.__anext__()
                except StopAsyncIteration:
                    if self.first is None and authorizer is not None:
                        authorizer.check_empty_stream(method, self.context)
                    raise
                if self.first is None:
                    self.first = message
                    self.principal = authenticate(message, self.context)
                    authorize(message, self.principal)
                    self.admitted = True
                elif message is _UNDECODABLE:
                    raise InvalidArgument(f"is not a valid {name} request message", field="request")
                elif authorizer is not None:
                    authorizer.check_stream_message(self.principal, message)
                return message

        client_streams = handler.stream_unary is not None or handler.stream_stream is not None

        if handler.unary_unary or handler.stream_unary:
            inner = cast("_Unary", handler.unary_unary or handler.stream_unary)

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                principal: Principal | None = None
                guarded = _Guarded(request, context) if client_streams else None
                response = None
                admitted = False
                try:
                    # Usually nobody is slowed: then no coroutine and no look-up of the peer.
                    if authorizer is not None and authorizer.slowing():
                        await hold(context)
                    if guarded is None:
                        principal = authenticate(request, context)
                        authorize(request, principal)
                        admitted = True
                        response = await inner(request, context)
                    else:
                        response = await inner(guarded, context)
                except BaseException as exc:
                    if not isinstance(exc, Exception):
                        raise
                    await finish(context, started, _principal(principal, guarded),
                                 _first(request, guarded), exc,
                                 at_door=not (guarded.admitted if guarded else admitted))
                    return None
                if audited:
                    await finish(context, started, _principal(principal, guarded),
                                 _first(request, guarded), None)
                else:
                    answered(context, started)
                return response

            factory = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                       else grpc.stream_unary_rpc_method_handler)
            return factory(unary, request_deserializer=_tolerant(handler.request_deserializer),
                           response_serializer=handler.response_serializer)

        inner_stream = cast("_Streaming", handler.unary_stream or handler.stream_stream)

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]
                            ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            principal: Principal | None = None
            guarded = _Guarded(request, context) if client_streams else None
            admitted = False
            try:
                if authorizer is not None and authorizer.slowing():
                    await hold(context)
                if guarded is None:
                    principal = authenticate(request, context)
                    authorize(request, principal)
                    admitted = True
                responses = inner_stream(guarded or request, context)
                if isinstance(responses, AsyncIterator):
                    async for response in responses:
                        yield response
                else:
                    await responses
            except Exception as exc:
                await finish(context, started, _principal(principal, guarded),
                             _first(request, guarded), exc,
                             at_door=not (guarded.admitted if guarded else admitted))
                return
            await finish(context, started, _principal(principal, guarded),
                         _first(request, guarded), None)

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                   else grpc.stream_stream_rpc_method_handler)
        return factory(streaming, request_deserializer=_tolerant(handler.request_deserializer),
                       response_serializer=handler.response_serializer)


#: Stands for a request message that does not decode: answered INVALID_ARGUMENT by the
#: interceptor, where grpc itself would answer UNKNOWN naming the parser's exception.
_UNDECODABLE: Any = object()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # protobuf's DecodeError, and whatever a mangled message raises
            return _UNDECODABLE

    return decode


def _principal(principal: Principal | None, guarded: Any) -> Principal | None:
    return guarded.principal if guarded is not None else principal


def _first(request: Any, guarded: Any) -> Message | None:
    first = guarded.first if guarded is not None else request
    return None if first is _UNDECODABLE else first


class WrappingServer(grpc.aio.Server):
    """Stands in for a server while services add themselves to it, and adds their handlers
    wrapped by ``interceptor``. grpc.aio runs a server's interceptors as a chain of coroutines
    on every call, before it looks the handler up; a handler wrapped once when it is added
    costs the call nothing of the kind."""

    def __init__(self, server: grpc.aio.Server, interceptor: ServiceInterceptor) -> None:
        self.server = server
        self._interceptor = interceptor

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]
                                 ) -> None:
        self.server.add_generic_rpc_handlers(
            [_WrappedHandlers(h, self._interceptor) for h in generic_rpc_handlers])

    def add_registered_method_handlers(self, service_name: str,
                                       method_handlers: Mapping[str, Handler]) -> None:
        wrap = self._interceptor.wrap
        self.server.add_registered_method_handlers(service_name, {
            name: cast("Handler", wrap(f"/{service_name}/{name}", handler))
            for name, handler in method_handlers.items()})

    def add_insecure_port(self, address: str) -> int:
        return self.server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self.server.add_secure_port(address, server_credentials)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self.server.wait_for_termination(timeout)


class _WrappedHandlers(grpc.GenericRpcHandler):
    """A service's handlers, each wrapped the first time a call asks for it."""

    def __init__(self, handlers: grpc.GenericRpcHandler, interceptor: ServiceInterceptor
                 ) -> None:
        self._handlers = handlers
        self._interceptor = interceptor
        self._found: dict[str, Handler | None] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method: str = handler_call_details.method
        try:
            return self._found[method]
        except KeyError:
            pass
        handler = self._handlers.service(handler_call_details)
        wrapped = self._found[method] = (self._interceptor.wrap(method, handler)
                                         if handler is not None else None)
        return wrapped
