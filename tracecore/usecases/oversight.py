"""Oversight, read side: where a batch's packs are, which batches used a supplier's lot, and
the diversion and clone alerts (listed, or watched as they are raised). Recalls and
withdrawals, which write, are in ``recall``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from pharmatrace.v1 import common_pb2 as cpb

from tracecore import localday, masterdata, regions
from tracecore.errors import InvalidArgument, NotFound
from tracecore.ledger import alerts, oversight, policy
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import Tenant
from tracecore.oversight import AlertFilter, AlertKind, AlertRecord, Location, lot
from tracecore.usecases.catalogue import Catalogue
from tracecore.usecases.declare import ADMIN, REGULATOR, Scope, use_case

#: How often a watch looks for new alerts.
WATCH_POLL_S = 0.5
_OVERSEERS = {ADMIN, REGULATOR}
_STORED_KINDS = frozenset(int(k) for k in AlertKind)


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """Which alerts a listing or watch wants; empty fields match everything."""

    kind: int = 0
    """``AlertKind`` number."""
    product: str = ""
    lot: str = ""
    """Needs ``product``."""
    region: str = ""
    """GB/T 2260 prefix: 2, 4 or 6 digits."""


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[AlertRecord]
    next_page_token: str
    last_alert_id: int
    """The newest alert stored: a watch after it gets only new ones."""


@dataclass(frozen=True, slots=True)
class MaterialUse:
    """A batch that used a supplier's lot: the material as the batch records it, and where the
    batch's packs are."""

    material: cpb.MaterialLot
    location: Location


@use_case(roles=_OVERSEERS, writes=False, scope=Scope.TENANT)
def locate_batch(ledger: Ledger, product: str, lot_text: str) -> Location:
    """Where a batch's packs are now, from counters."""
    masterdata.product_identifier(product)
    lot(lot_text)
    with ledger.env.read() as txn:
        batch_ref, batch = ledger.batch_in(txn, product, lot_text)
        return oversight.locate(ledger, txn, batch_ref, batch)


@use_case(roles=_OVERSEERS, writes=False, scope=Scope.TENANT)
def batches_using_material(ledger: Ledger, supplier: str, supplier_lot: str
                           ) -> list[MaterialUse]:
    """Every batch that used a supplier's lot, in the order they were added."""
    if not supplier.strip():
        raise InvalidArgument("is required", field="supplier")
    if not supplier_lot.strip():
        raise InvalidArgument("is required", field="supplier_lot")
    with ledger.env.read() as txn:
        uses = ledger.batches_using(txn, supplier, supplier_lot)
        if not uses:
            raise NotFound(f"no batch used lot {supplier_lot} of {supplier}",
                           field="supplier_lot")
        return [MaterialUse(material, oversight.locate(ledger, txn, ref, batch))
                for ref, batch, material in uses]


@use_case(roles=_OVERSEERS, writes=False, scope=Scope.TENANT)
def list_alerts(tenant: Tenant, query: AlertQuery, from_ms: int, to_ms: int, page_size: int,
                page_token: str, since: str = "", until: str = "") -> AlertPage:
    """One page of matching alerts, oldest first, raised in [from_ms, to_ms) (0: open) and
    from local day ``since`` to before local day ``until`` (YYYY-MM-DD, "" open), days cut at
    midnight in the tenant's zone."""
    if since or until:
        with tenant.ledger.env.read() as txn:
            zone = policy.day_zone(tenant.ledger, txn)
        if since:
            start = localday.day_start(_day(since, "since"), zone)
            from_ms = max(from_ms, start) if from_ms else start
        if until:
            end = localday.day_start(_day(until, "until"), zone)
            to_ms = min(to_ms, end) if to_ms else end
    if from_ms and to_ms and to_ms <= from_ms:
        raise InvalidArgument("must be after from_ms", field="to_ms")
    wanted = replace(alert_filter(tenant.ledger, query), from_ms=from_ms, to_ms=to_ms)
    book = alerts.book(tenant.path, tenant.name, tenant.ledger.codes)
    found, token = book.page(wanted, page_size, page_token)
    return AlertPage(found, token, book.last_id())


@use_case(roles=_OVERSEERS, writes=False, scope=Scope.TENANT)
async def watch_alerts(tenant: Callable[[], Tenant], query: AlertQuery, after_id: int
                       ) -> AsyncIterator[list[AlertRecord]]:
    """Matching alerts stored after ``after_id``, as they come, until the caller stops.
    ``tenant`` is looked up on every poll: a tenant taken offline closes its store (and the
    lookup says so)."""
    wanted = alert_filter(tenant().ledger, query)
    after = after_id
    while True:
        current = tenant()
        book = alerts.book(current.path, current.name, current.ledger.codes)
        found, after = book.after(after, wanted)
        if found:
            yield found
        else:
            await asyncio.sleep(WATCH_POLL_S)


def alert_filter(ledger: Catalogue, query: AlertQuery) -> AlertFilter:
    """The alerts a listing or watch wants; INVALID_ARGUMENT or NOT_FOUND naming a bad field."""
    if query.kind and query.kind not in _STORED_KINDS:
        raise InvalidArgument("unknown alert kind", field="kind")
    if query.lot and not query.product:
        raise InvalidArgument("a lot needs its product", field="product")
    product = ""
    if query.lot:
        lot(query.lot)
        product = ledger.batch(query.product, query.lot)[1].product
    elif query.product:
        ledger.product(query.product)  # NOT_FOUND when it is not registered
        product = masterdata.product_identifier(query.product)
    region = regions.parse_region_prefix(query.region, field="region") if query.region else ""
    return AlertFilter(kind=query.kind, product=product, lot=query.lot, region=region)


def _day(text: str, field: str) -> int:
    try:
        return localday.day_number(text)
    except InvalidArgument:
        raise InvalidArgument(f"{text!r} is not YYYY-MM-DD", field=field) from None
