"""The directory's marks of replicas seen, on a real JetStream server: a replica's heartbeat is
one write an address however many tenants it serves, and leaves their entries alone; an address
not seen for ``STALE_S`` is left out of what readers are given (by `route` and by the front
doors' mirror) and dropped from the entry by the next replica announcing itself there; a mark
in an entry's own "seen" map (earlier releases) still counts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import nats
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from replica_svc import directory
from replica_svc.directory_mirror import DirectoryMirror
from tests.e2e.nats_server import NatsServer

GTIN = "09501101530010"
CODE = f"(01){GTIN}(21)SERIAL0001"
STALE_MS = int(directory.STALE_S * 1000)


def _run(nats_server: NatsServer, test: Callable[[JetStreamContext], Awaitable[None]]) -> None:
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await test(nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(main())


async def _revision(js: JetStreamContext, key: str) -> int:
    kv = await directory.bucket(js)
    return int((await kv.get(key)).revision)


async def _mark_at(js: JetStreamContext, address: str, ms: int) -> None:
    """The mark a replica left at ``ms`` (one killed then, say)."""
    kv = await directory.bucket(js)
    await kv.put(directory.seen_key(address),
                 json.dumps({"address": address, "ms": ms}).encode())


def test_a_heartbeat_is_one_write_an_address_whatever_the_tenants(
        nats_server: NatsServer) -> None:
    """A replica of 40 tenants announced in each, then marked seen: its two addresses' marks
    move, no tenant entry is written again, and readers are given the replica."""

    async def test(js: JetStreamContext) -> None:
        tenants = [f"t{i}" for i in range(40)]
        for tenant in tenants:
            await directory.announce_replica(js, tenant, "10.0.0.7:50052", "https://r7.example")
        await directory.register_products(js, "t0", [GTIN])
        before = [await _revision(js, f"tenant.{t}") for t in tenants]
        kv = await directory.bucket(js)
        first = (await kv.get(directory.seen_key("10.0.0.7:50052"))).revision
        await directory.mark_seen(js, ["10.0.0.7:50052", "https://r7.example"])
        assert [await _revision(js, f"tenant.{t}") for t in tenants] == before
        mark = await kv.get(directory.seen_key("10.0.0.7:50052"))
        assert mark.revision > first
        assert directory.seen_mark(mark.value)[0] == "10.0.0.7:50052"  # type: ignore[index]
        route = await directory.route(js, CODE)
        assert route.replicas == ["10.0.0.7:50052"]
        assert route.front_doors == ["https://r7.example"]

    _run(nats_server, test)


def test_an_address_not_seen_is_left_out_then_dropped_by_the_next_announce(
        nats_server: NatsServer) -> None:
    """Two replicas of a tenant, one last marked longer than `STALE_S` ago (killed): `route`
    gives readers the other only; a third replica announcing itself drops the silent one's
    addresses from the entry and deletes its marks."""

    async def test(js: JetStreamContext) -> None:
        await directory.register_products(js, "acme", [GTIN])
        await directory.announce_replica(js, "acme", "10.0.0.1:50052", "https://r1.example")
        await directory.announce_replica(js, "acme", "10.0.0.2:50052", "https://r2.example")
        now = int(time.time() * 1000)
        for address in ("10.0.0.1:50052", "https://r1.example"):
            await _mark_at(js, address, now - STALE_MS - 1_000)
        route = await directory.route(js, CODE)
        assert route.replicas == ["10.0.0.2:50052"]
        assert route.front_doors == ["https://r2.example"]
        assert "10.0.0.1:50052" in (await directory.entry(js, "acme"))["replicas"]  # type: ignore[operator]

        await directory.announce_replica(js, "acme", "10.0.0.3:50052")
        doc = await directory.entry(js, "acme")
        assert doc["replicas"] == ["10.0.0.2:50052", "10.0.0.3:50052"]
        assert doc["front_doors"] == ["https://r2.example"]
        kv = await directory.bucket(js)
        for address in ("10.0.0.1:50052", "https://r1.example"):
            try:
                await kv.get(directory.seen_key(address))
            except KeyNotFoundError:
                continue
            raise AssertionError(f"the mark of {address} was kept")

    _run(nats_server, test)


def test_a_mark_in_the_entry_itself_still_counts(nats_server: NatsServer) -> None:
    """An entry written by a release that marked addresses in each entry ("seen"): an address
    whose mark there is old is left out, one marked since by its own key is given, and a
    replica withdrawing takes itself out of both."""

    async def test(js: JetStreamContext) -> None:
        await directory.register_products(js, "acme", [GTIN])
        now = int(time.time() * 1000)
        kv = await directory.bucket(js)
        old = now - STALE_MS - 1_000
        await kv.put("tenant.acme", json.dumps({
            "writer": {}, "replicas": ["10.0.0.1:50052", "10.0.0.2:50052"],
            "front_doors": [], "seen": {"10.0.0.1:50052": old, "10.0.0.2:50052": old},
        }).encode())
        await directory.mark_seen(js, ["10.0.0.2:50052"])
        assert (await directory.route(js, CODE)).replicas == ["10.0.0.2:50052"]
        await directory.withdraw(js, ["acme"], verify="10.0.0.2:50052")
        doc = await directory.entry(js, "acme")
        assert doc["replicas"] == ["10.0.0.1:50052"]
        assert doc["seen"] == {"10.0.0.1:50052": old}

    _run(nats_server, test)


def test_the_front_doors_mirror_leaves_out_a_door_not_seen(nats_server: NatsServer) -> None:
    """The front doors' copy of the directory follows the marks: a replica's door is offered
    while its mark is fresh and left out once it is older than `STALE_S`."""

    async def test(js: JetStreamContext) -> None:
        await directory.announce_replica(js, "acme", "10.0.0.1:50052", "https://r1.example")
        await directory.announce_replica(js, "acme", "10.0.0.2:50052", "https://r2.example")
        mirror = DirectoryMirror.start(nats_server.url)
        try:
            await asyncio.wait_for(mirror.loaded.wait(), 20)
            assert list(mirror.front_doors("acme")) == ["https://r1.example",
                                                        "https://r2.example"]
            await _mark_at(js, "https://r1.example",
                           int(time.time() * 1000) - STALE_MS - 1_000)
            deadline = time.monotonic() + 20
            while list(mirror.front_doors("acme")) != ["https://r2.example"]:
                assert time.monotonic() < deadline, mirror.front_doors("acme")
                await asyncio.sleep(0.05)
        finally:
            await mirror.stop()

    _run(nats_server, test)
