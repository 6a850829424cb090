"""A bare gRPC echo server: the baseline that unary Verify is measured against.

Set up as verify_svc sets up its servers (grpc.aio on uvloop, the same channel options, N worker
processes sharing one port through SO_REUSEPORT) but with nothing else: no interceptor, health,
reflection or protobuf, and one unary method that returns the request bytes as they came.

    python -m bench.echo --host 127.0.0.1 --port 0 --workers 2 --ready-file F

writes {"echo": port, "pid": pid, "workers": [pids]} to F once every worker is serving, and
stops its workers on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from pathlib import Path

import grpc

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
# As tracerpc/server.py sets them for every pharmatrace server; keep the two in step.
_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 1),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]
_START_TIMEOUT_S = 30.0


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _serve(address: str, ready: multiprocessing.connection.Connection) -> None:
    server = grpc.aio.server(options=_OPTIONS)
    # No (de)serializers: the handler sees and returns raw bytes.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}),))
    server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready.send(os.getpid())
    ready.close()
    await stop.wait()
    await server.stop(1)


def _worker(address: str, ready: multiprocessing.connection.Connection) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_serve(address, ready))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo",
                                     description="A bare gRPC echo server for baselines.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)

    # Hold the port (bound, not listening) so every worker can bind it by number, as
    # verify_svc.workers does.
    reservation = socket.socket(socket.AF_INET)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind((args.host, args.port))
    port = reservation.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    processes = []
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for _ in range(max(1, args.workers)):
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_worker, args=(f"{args.host}:{port}", send),
                                  name="bench-echo")
            process.start()
            send.close()
            processes.append(process)
            if not receive.poll(_START_TIMEOUT_S):
                raise RuntimeError("an echo worker did not start in time")
            receive.recv()
        reservation.close()
        ready = Path(args.ready_file)
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"echo": port, "pid": os.getpid(),
                                   "workers": [p.pid for p in processes]}))
        tmp.replace(ready)
        while not stop and all(p.is_alive() for p in processes):
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
