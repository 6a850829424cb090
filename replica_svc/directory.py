"""The directory: a JetStream key-value bucket saying which node writes each tenant, which
replicas serve it, and which tenant each product identifier (GTIN-14, NMPA drug identifier)
belongs to, so that a check for any code reaches a node holding its tenant.

Keys: ``tenant.<tenant>`` -> {"writer": {"issue": addr, "verify": addr}, "replicas": [addr],
"front_doors": [public base URL]};
``product.<GTIN-14 or drug id>`` -> tenant. Writers fill in products as their change records
register them; replicas add themselves to their tenants' lists.
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


async def announce_replica(js: JetStreamContext, tenant: str, verify: str) -> None:
    def change(doc: dict[str, object]) -> dict[str, object]:
        replicas = list(doc.get("replicas", []))  # type: ignore[call-overload]
        if verify not in replicas:
            replicas.append(verify)
        doc["replicas"] = replicas
        return doc

    await _update(js, f"tenant.{tenant}", change)


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
    return Route(name, dict(doc.get("writer", {})), list(doc.get("replicas", [])),
                 list(doc.get("front_doors", [])))


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


async def withdraw_front_door(js: JetStreamContext, tenants: list[str], base_url: str,
                              timeout_s: float = WITHDRAW_S) -> None:
    """Takes a front door that stops serving out of its tenants' entries, so that no node
    sends a check there any more; given up after ``timeout_s`` (a node stopping does not wait
    for a cluster that cannot take the write: the others then skip the door that does not
    answer)."""

    def change(doc: dict[str, object]) -> dict[str, object]:
        doc["front_doors"] = [u for u in doc.get("front_doors", [])  # type: ignore[attr-defined]
                              if u != base_url]
        doc.setdefault("replicas", [])
        return doc

    async def withdraw() -> None:
        for tenant in tenants:
            await _update(js, f"tenant.{tenant}", change)

    try:
        await asyncio.wait_for(withdraw(), timeout_s)
    except (TimeoutError, *_PASSING) as exc:
        log.warning("front door %s still listed in the directory: %s", base_url,
                    exc or type(exc).__name__)
