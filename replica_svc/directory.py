"""The directory: a JetStream key-value bucket saying which node writes each tenant, which
replicas serve it, and which tenant each product identifier (GTIN-14, NMPA drug identifier)
belongs to, so that a check for any code reaches a node holding its tenant.

Keys: ``tenant.<tenant>`` -> {"writer": {"issue": addr, "verify": addr}, "replicas": [addr],
"front_doors": [public base URL], "seen": {replica addr or URL: unix ms}};
``product.<GTIN-14 or drug id>`` -> tenant. Writers fill in products as their change records
register them; replicas add themselves to their tenants' lists, take themselves out when they
stop, and mark their addresses "seen" every ``HEARTBEAT_S``: an address not seen for
``STALE_S`` (a replica killed, or its machine lost) is no longer given to readers, and the next
replica marking the entry drops it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
    ServiceUnavailableError,
)

from replica_svc.streams import copies
from tracecore.codes import parse

BUCKET = "pharmatrace_directory"
_CAS_TRIES = 20
#: How long a write to the directory is retried while the cluster cannot take it (a cluster
#: still electing its leaders, a node restarting) before the node gives up.
_UNREACHABLE_S = 60.0
_RETRY_S = 0.5
#: How long a stopping node tries to take its front door out of the directory.
WITHDRAW_S = 2.0
#: How often a running replica marks its addresses seen in its tenants' entries.
HEARTBEAT_S = 10.0
#: A replica's address not seen for this long is left out of what readers are given (three
#: missed marks: a replica killed without a word stops being sent reads after at most this long;
#: the nodes' clocks must agree to well within it).
STALE_S = 30.0
#: What a JetStream cluster answers while it cannot take a write for a moment.
_PASSING = (NatsTimeout, NoRespondersError, ServiceUnavailableError)

log = logging.getLogger("pharmatrace.directory")


@dataclass
class Route:
    """Where a tenant is served."""

    tenant: str
    writer: dict[str, str] = field(default_factory=dict)
    replicas: list[str] = field(default_factory=list)
    front_doors: list[str] = field(default_factory=list)
    """Public base URLs of the HTTP front doors holding the tenant."""

    def readers(self) -> list[str]:
        """The verification addresses to read from, best first: the replicas (there to carry
        the reads), then the writer."""
        verify = self.writer.get("verify", "")
        return [*self.replicas, *([verify] if verify and verify not in self.replicas else [])]


async def bucket(js: JetStreamContext):  # type: ignore[no-untyped-def]
    try:
        return await js.key_value(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(bucket=BUCKET, replicas=copies(js))


async def _update(js: JetStreamContext, key: str, change) -> None:  # type: ignore[no-untyped-def]
    """Read-modify-write of one JSON entry, retried while the cluster cannot take it."""
    deadline = time.monotonic() + _UNREACHABLE_S
    while True:
        try:
            await _compare_and_set(js, key, change)
            return
        except _PASSING as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("directory entry %s: %s; retrying", key, exc or type(exc).__name__)
            await asyncio.sleep(_RETRY_S)


async def _compare_and_set(js: JetStreamContext, key: str, change) -> None:  # type: ignore[no-untyped-def]
    """Read-modify-write of one JSON entry, retried when another node wrote it meanwhile."""
    kv = await bucket(js)
    for _ in range(_CAS_TRIES):
        try:
            entry = await kv.get(key)
            doc = json.loads(entry.value or b"{}")
            revision = entry.revision
        except KeyNotFoundError:
            doc, revision = {}, None
        doc = change(doc)
        if doc is None:  # the change does not apply to the entry as it stands
            return
        data = json.dumps(doc, sort_keys=True).encode()
        try:
            if revision is None:
                await kv.create(key, data)
            else:
                await kv.update(key, data, last=revision)
            return
        except Exception as exc:  # nats-py raises a plain APIError for a lost race
            if not _conflict(exc):
                raise
    raise RuntimeError(f"directory entry {key} kept changing")


def _conflict(exc: Exception) -> bool:
    return isinstance(exc, KeyWrongLastSequenceError) or "wrong last sequence" in str(exc)


async def announce_writer(js: JetStreamContext, tenant: str, node: str, issue: str,
                          verify: str) -> bool:
    """Names ``node``'s addresses as the writer of ``tenant``, unless the entry names another
    node promoted writer (a fenced writer started again must not send clients back to it);
    whether it did."""
    announced = [False]

    def change(doc: dict[str, object]) -> dict[str, object] | None:
        if doc.get("writer_node", node) != node:
            return None
        doc["writer"] = {"issue": issue, "verify": verify}
        doc.setdefault("replicas", [])
        announced[0] = True
        return doc

    await _update(js, f"tenant.{tenant}", change)
    return announced[0]


async def announce_replica(js: JetStreamContext, tenant: str, verify: str,
                           front_door: str = "") -> None:
    """Adds a replica's verification address (and the public base URL of its front door, ""
    when it has none) to ``tenant``'s entry, marked seen now; every replica address not seen
    for ``STALE_S`` leaves the entry. Repeated every ``HEARTBEAT_S`` while the replica runs."""
    now = _now_ms()

    def change(doc: dict[str, object]) -> dict[str, object]:
        seen = {a: int(t) for a, t in dict(doc.get("seen", {})).items()  # type: ignore[call-overload]
                if now - int(t) < STALE_S * 1000}
        gone = set(dict(doc.get("seen", {}))) - set(seen)  # type: ignore[call-overload]
        for key, address in (("replicas", verify), ("front_doors", front_door)):
            listed = [a for a in doc.get(key, []) if a not in gone]  # type: ignore[attr-defined]
            if address:
                seen[address] = now
                if address not in listed:
                    listed.append(address)
            doc[key] = listed
        doc["seen"] = seen
        return doc

    await _update(js, f"tenant.{tenant}", change)


def live(addresses: list[str], seen: dict[str, int], now_ms: int | None = None) -> list[str]:
    """``addresses`` without those of replicas not seen for ``STALE_S`` (an address never
    marked, a writer's, stays)."""
    now = _now_ms() if now_ms is None else now_ms
    return [a for a in addresses if now - seen.get(a, now) < STALE_S * 1000]


def _now_ms() -> int:
    return int(time.time() * 1000)


async def entry(js: JetStreamContext, tenant: str) -> dict[str, object]:
    """A tenant's entry as it stands ({} when there is none)."""
    kv = await bucket(js)
    try:
        doc: dict[str, object] = json.loads((await kv.get(f"tenant.{tenant}")).value or b"{}")
    except KeyNotFoundError:
        return {}
    return doc


def writer_of(doc: dict[str, object]) -> tuple[str, int]:
    """(node named writer, writer term) of a tenant's entry; ("", 0) before any promotion."""
    return str(doc.get("writer_node", "")), int(doc.get("term", 0))  # type: ignore[call-overload]


async def writer_node(js: JetStreamContext, tenant: str) -> tuple[str, int]:
    """(node named writer, writer term) of a tenant; ("", 0) before any promotion."""
    return writer_of(await entry(js, tenant))


async def promote(js: JetStreamContext, tenant: str, node: str) -> int:
    """Names ``node`` the writer of ``tenant`` under the next writer term (compare-and-set on
    the entry's revision, so two promotions cannot both win); returns the term."""
    terms: list[int] = []

    def change(doc: dict[str, object]) -> dict[str, object]:
        term = int(doc.get("term", 0)) + 1  # type: ignore[call-overload]
        doc.update(term=term, writer_node=node, writer={})
        doc.pop("moving_to", None)
        doc.setdefault("replicas", [])
        terms.append(term)
        return doc

    await _update(js, f"tenant.{tenant}", change)
    return terms[-1]


async def pause_for_move(js: JetStreamContext, tenant: str, node: str) -> None:
    """Marks ``tenant`` as moving to ``node``: its writer refuses new writes (UNAVAILABLE,
    retry) until the move's promotion names the new writer."""

    def change(doc: dict[str, object]) -> dict[str, object]:
        doc["moving_to"] = node
        doc.setdefault("replicas", [])
        return doc

    await _update(js, f"tenant.{tenant}", change)


async def resume(js: JetStreamContext, tenant: str) -> None:
    """Ends a move's pause without a promotion (the move failed)."""

    def change(doc: dict[str, object]) -> dict[str, object]:
        doc.pop("moving_to", None)
        return doc

    await _update(js, f"tenant.{tenant}", change)


async def register_products(js: JetStreamContext, tenant: str, identifiers: list[str]) -> None:
    kv = await bucket(js)
    for identifier in identifiers:
        await kv.put(f"product.{identifier}", tenant.encode())


async def route(js: JetStreamContext, code: str) -> Route:
    """The tenant of a code (any input form) and where it is served; KeyError if unknown."""
    product = parse(code).code.product
    kv = await bucket(js)
    try:
        tenant = (await kv.get(f"product.{product}")).value or b""
    except KeyNotFoundError:
        raise KeyError(f"no tenant has registered product {product}") from None
    name = tenant.decode()
    try:
        doc = json.loads((await kv.get(f"tenant.{name}")).value or b"{}")
    except KeyNotFoundError:
        doc = {}
    seen = dict(doc.get("seen", {}))
    return Route(name, dict(doc.get("writer", {})), live(list(doc.get("replicas", [])), seen),
                 live(list(doc.get("front_doors", [])), seen))


async def announce_front_door(js: JetStreamContext, tenant: str, base_url: str) -> None:
    """Adds the public base URL of a front door that holds ``tenant`` to its entry, so that
    other nodes' front doors can send a check of its codes there."""

    def change(doc: dict[str, object]) -> dict[str, object]:
        doors = list(doc.get("front_doors", []))  # type: ignore[call-overload]
        if base_url not in doors:
            doors.append(base_url)
        doc["front_doors"] = doors
        doc.setdefault("replicas", [])
        return doc

    await _update(js, f"tenant.{tenant}", change)


async def withdraw(js: JetStreamContext, tenants: list[str], *, front_door: str = "",
                   verify: str = "", timeout_s: float = WITHDRAW_S) -> None:
    """Takes a node that stops serving out of its tenants' entries (its front door's public
    base URL, and a replica's verification address), so that no node or client is sent there
    any more; given up after ``timeout_s`` (a node stopping does not wait for a cluster that
    cannot take the write: a replica's addresses then leave after ``STALE_S``, and the front
    doors skip a door that does not answer)."""
    leaving = {a for a in (front_door, verify) if a}

    def change(doc: dict[str, object]) -> dict[str, object]:
        for key in ("front_doors", "replicas"):
            doc[key] = [a for a in doc.get(key, []) if a not in leaving]  # type: ignore[attr-defined]
        seen = {a: t for a, t in dict(doc.get("seen", {})).items()  # type: ignore[call-overload]
                if a not in leaving}
        if seen or "seen" in doc:
            doc["seen"] = seen
        return doc

    async def withdraw_all() -> None:
        for tenant in tenants:
            await _update(js, f"tenant.{tenant}", change)

    try:
        await asyncio.wait_for(withdraw_all(), timeout_s)
    except (TimeoutError, *_PASSING) as exc:
        log.warning("%s still listed in the directory: %s", " and ".join(sorted(leaving)),
                    exc or type(exc).__name__)
