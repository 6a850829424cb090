"""Building, binding and stopping a gRPC server with health, reflection and the interceptor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tracerpc.authz import Authorizer
from tracerpc.certs import Tls as Tls  # callers name the settings they pass as rpc_server.Tls
from tracerpc.interceptor import ServiceInterceptor, WrappingServer
from tracerpc.metrics import Metrics

log = logging.getLogger("pharmatrace.server")

#: Largest message either side may send: a VerifyBatch of 100,000 codes of 4 KiB fits with room.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class PortUnavailable(OSError):
    """The server could not listen on the address it was given (another program has it)."""


@dataclass(frozen=True)
class Service:
    """A servicer and how to add it: ``add(servicer, server)`` and its full name."""

    name: str
    servicer: Any
    add: Callable[[Any, grpc.aio.Server], None]


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    names: tuple[str, ...]

    async def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING, new calls are refused, calls in flight get ``grace`` s."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start(
    services: Sequence[Service],
    address: str,
    metrics: Metrics,
    *,
    tls: Tls | None,
    authorizer: Authorizer | None = None,
    reuse_port: bool = False,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    public_address: str = "",
) -> Running:
    """A started server on ``address`` ("host:port", port 0 picks one) serving ``services``;
    with TLS, also on ``public_address`` (if given) without asking for client certificates."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    ours = ServiceInterceptor(metrics, authorizer)
    server: grpc.aio.Server
    if interceptors:
        # Other interceptors choose the handler a call runs; ours wraps whichever they chose.
        server = grpc.aio.server(interceptors=[ours, *interceptors], options=options)
    else:
        server = WrappingServer(grpc.aio.server(options=options), ours)
    for service in services:
        service.add(service.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(s.name for s in services)
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
            if public_address:
                # Python's gRPC cannot ask for a client certificate without requiring one:
                # callers without one (the public, token holders) get a port of their own.
                server.add_secure_port(public_address, tls.credentials(anonymous=True))
    except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
        raise PortUnavailable(str(exc)) from None
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on port %d%s", ", ".join(names), port, "" if tls else " (plaintext)")
    return Running(server, port, health_servicer, names)
