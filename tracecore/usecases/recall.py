"""Taking packs off the market: a batch recalled, every batch that used a supplier's material lot
recalled, or a product withdrawn. Each is one transaction of its own on its tenant's writer lane."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tracecore import masterdata
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument
from tracecore.ledger import oversight
from tracecore.ledger.store import Ledger
from tracecore.oversight import Location
from tracecore.oversight import lot as check_lot
from tracecore.usecases.declare import ADMIN, REGULATOR, Scope, use_case
from tracecore.usecases.lifecycle import EventContext, acting_party, tz_offset
from tracecore.usecases.writeside import WriteSide, who

MAX_REASON = 500

_Hold = Callable[..., tuple[list[Location], list[int]]]


@dataclass(frozen=True, slots=True)
class Held:
    """Where the batches taken off the market are, and the events that record it."""

    batches: list[Location]
    event_seqs: list[int]


@use_case(roles={ADMIN, REGULATOR}, writes=True, scope=Scope.TENANT)
async def recall_batch(side: WriteSide, caller: Principal, tenant: str, product: str, lot: str,
                       reason: str, context: EventContext) -> Held:
    """Every pack of one batch is recalled."""
    masterdata.product_identifier(product)
    check_lot(lot)
    order = _order(side, caller, context, reason)
    return await _hold(side, tenant, oversight.recall_batch, product, lot, order=order)


@use_case(roles={ADMIN, REGULATOR}, writes=True, scope=Scope.TENANT)
async def recall_material(side: WriteSide, caller: Principal, tenant: str, supplier: str,
                          supplier_lot: str, reason: str, context: EventContext) -> Held:
    """Every batch made with a supplier's material lot is recalled."""
    if not supplier.strip():
        raise InvalidArgument("is required", field="supplier")
    if not supplier_lot.strip():
        raise InvalidArgument("is required", field="supplier_lot")
    order = _order(side, caller, context, reason)
    return await _hold(side, tenant, oversight.recall_material, supplier, supplier_lot,
                       order=order)


@use_case(roles={ADMIN, REGULATOR}, writes=True, scope=Scope.TENANT)
async def withdraw_product(side: WriteSide, caller: Principal, tenant: str, product: str,
                           reason: str, context: EventContext) -> Held:
    """Every pack of a product is withdrawn from the market."""
    masterdata.product_identifier(product)
    order = _order(side, caller, context, reason)
    return await _hold(side, tenant, oversight.withdraw_product, product, order=order)


async def _hold(side: WriteSide, tenant: str, fn: _Hold, *args: str,
                order: oversight.Order) -> Held:
    ledger: Ledger = side.data.get(tenant).ledger
    locations, seqs = await side.writer.run(tenant, fn, ledger, *args, order, side.clock())
    return Held(locations, seqs)


def _order(side: WriteSide, caller: Principal, context: EventContext, reason: str
           ) -> oversight.Order:
    if not reason.strip():
        raise InvalidArgument("is required: why the packs come off the market", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidArgument(f"at most {MAX_REASON} characters", field="reason")
    return oversight.Order(reason=reason, when_ms=context.when_ms or side.clock(),
                           who=who(caller), party_id=acting_party(caller, context.party_id),
                           tz_offset=tz_offset(context.tz_offset))
