"""The bare baseline of the HTTP benchmarks: a Starlette hello-world on the very server stack
of the front door (frontdoor.server: uvicorn, httptools, uvloop, SO_REUSEPORT), ``--workers``
processes on one port; ``/page/{size}`` answers a static page of that many bytes.

    python -m bench.hello_http --host 127.0.0.1 --workers 2 --ready-file ready.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello\n")


async def page(request: Request) -> Response:
    """A static page of ``size`` bytes: what sending a page as long as the check page's costs
    this stack, with nothing worked out."""
    size = min(int(request.path_params["size"]), 1 << 20)
    return Response(b"x" * size, media_type="text/html; charset=utf-8")


async def _serve(host: str, port: int, ready: Any) -> None:
    from frontdoor import server

    app = Starlette(routes=[Route("/hello", hello, methods=["GET"]),
                            Route("/page/{size:int}", page, methods=["GET"])])
    running = await server.start(app, server.bind(host, port))
    ready.put(os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop(1.0)


def _worker(host: str, port: int, ready: Any) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(_serve(host, port, ready))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    reservation = socket.socket()
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind((args.host, 0))
    port = reservation.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(args.host, port, ready))
               for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    reservation.close()
    tmp = Path(args.ready_file).with_suffix(".tmp")
    tmp.write_text(json.dumps({"http": port, "pid": os.getpid()}))
    tmp.replace(args.ready_file)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    while not stop[0] and all(w.is_alive() for w in workers):
        time.sleep(0.2)
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(5)


if __name__ == "__main__":
    main()
