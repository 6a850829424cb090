"""The directory: a JetStream key-value bucket saying which node writes each tenant, which
replicas serve it, and which tenant each product identifier (GTIN-14, NMPA drug identifier)
belongs to, so that a check for any code reaches a node holding its tenant.

Keys: ``tenant.<tenant>`` -> {"writer": {"issue": addr, "verify": addr}, "replicas": [addr],
"front_doors": [public base URL]}; ``product.<GTIN-14 or drug id>`` -> tenant;
``seen.<hash of an address>`` -> {"address": replica addr or URL, "ms": unix ms}. Writers fill in
products as their change records register them; replicas add themselves to their tenants'
lists, take themselves out when they stop, and mark each of their addresses seen every
``HEARTBEAT_S`` (one key an address, however many tenants the replica serves): an address not
seen for ``STALE_S`` (a replica killed, or its machine lost) is no longer given to readers, and
the next replica to announce itself in the tenant's entry drops it. A tenant entry's "seen" map
(from releases that marked addresses in every entry) is read as well, and pruned with the lists.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterable
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
#: How often a running replica marks its addresses seen.
HEARTBEAT_S = 10.0
_SEEN = "seen."
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
    await _retrying(f"entry {key}", _compare_and_set, js, key, change)


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
    when it has none) to ``tenant``'s entry, marked seen now; every other address of the entry
    not seen for ``STALE_S`` leaves it. Done when the replica starts (and again after it could
    not mark itself seen for ``STALE_S``); ``mark_seen`` keeps it listed meanwhile."""
    mine = [a for a in (verify, front_door) if a]
    await mark_seen(js, mine)
    kv = await bucket(js)
    now = _now_ms()
    doc = await entry(js, tenant)
    listed = [*doc.get("replicas", []), *doc.get("front_doors", [])]  # type: ignore[misc]
    marks = await _marks(kv, listed, doc)
    stale = {a for a, t in marks.items() if now - t >= STALE_S * 1000} - set(mine)

    def change(doc: dict[str, object]) -> dict[str, object]:
        for key, address in (("replicas", verify), ("front_doors", front_door)):
            kept = [a for a in doc.get(key, []) if a not in stale]  # type: ignore[attr-defined]
            if address and address not in kept:
                kept.append(address)
            doc[key] = kept
        _forget(doc, stale | set(mine))
        return doc

    await _update(js, f"tenant.{tenant}", change)
    await _unmark(kv, stale)


async def mark_seen(js: JetStreamContext, addresses: Iterable[str]) -> None:
    """Marks a running replica's addresses seen now, one key an address: every
    ``HEARTBEAT_S``, so that readers keep being sent there."""
    kv = await bucket(js)
    now = _now_ms()
    for address in addresses:
        data = json.dumps({"address": address, "ms": now}).encode()
        await _retrying(f"the mark of {address}", kv.put, seen_key(address), data)


def seen_key(address: str) -> str:
    """The key of an address's last mark (a hash: keys hold neither ':' nor '/')."""
    return _SEEN + hashlib.sha256(address.encode()).hexdigest()[:40]


def seen_mark(value: bytes | None) -> tuple[str, int] | None:
    """(address, unix ms) of a mark's value; None for anything else."""
    try:
        doc = json.loads(value or b"")
        return str(doc["address"]), int(doc["ms"])
    except (ValueError, TypeError, KeyError):
        return None


async def _marks(kv, addresses: Iterable[str], doc: dict[str, object]  # type: ignore[no-untyped-def]
                 ) -> dict[str, int]:
    """The last mark of each of ``addresses`` that has one: its key's, or the entry's "seen"
    map's where that is later."""
    wanted = set(addresses)
    marks = {str(a): int(t) for a, t in dict(doc.get("seen", {})).items()  # type: ignore[call-overload]
             if a in wanted}
    for address in wanted:
        try:
            mark = seen_mark((await kv.get(seen_key(address))).value)
        except KeyNotFoundError:
            continue
        if mark is not None and mark[0] == address:
            marks[address] = max(mark[1], marks.get(address, 0))
    return marks


async def _unmark(kv, addresses: Iterable[str]) -> None:  # type: ignore[no-untyped-def]
    """Deletes the marks of addresses taken out of the directory."""
    for address in addresses:
        await _retrying(f"the mark of {address}", kv.delete, seen_key(address))


def _forget(doc: dict[str, object], addresses: set[str]) -> None:
    """Drops ``addresses`` from the entry's "seen" map (of earlier releases), if it has one."""
    if "seen" in doc:
        seen = dict(doc["seen"])  # type: ignore[call-overload]
        doc["seen"] = {a: t for a, t in seen.items() if a not in addresses}


async def _retrying(what: str, write, *args: object) -> None:  # type: ignore[no-untyped-def]
    """``write(*args)`` retried while the cluster cannot take it, up to ``_UNREACHABLE_S``."""
    deadline = time.monotonic() + _UNREACHABLE_S
    while True:
        try:
            await write(*args)
            return
        except _PASSING as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("directory %s: %s; retrying", what, exc or type(exc).__name__)
            await asyncio.sleep(_RETRY_S)


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
    replicas, doors = list(doc.get("replicas", [])), list(doc.get("front_doors", []))
    seen = await _marks(kv, [*replicas, *doors], doc)
    return Route(name, dict(doc.get("writer", {})), live(replicas, seen), live(doors, seen))


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
        _forget(doc, leaving)
        return doc

    async def withdraw_all() -> None:
        for tenant in tenants:
            await _update(js, f"tenant.{tenant}", change)
        await _unmark(await bucket(js), leaving)

    try:
        await asyncio.wait_for(withdraw_all(), timeout_s)
    except (TimeoutError, *_PASSING) as exc:
        log.warning("%s still listed in the directory: %s", " and ".join(sorted(leaving)),
                    exc or type(exc).__name__)
