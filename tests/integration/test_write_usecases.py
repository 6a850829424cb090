"""The write use cases called directly, as any transport would: no gRPC, a real ledger in
tmp_path, the clock injected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pharmatrace.v1 import common_pb2 as cpb

from tracecore.codes import Code, Scheme
from tracecore.credentials import OPERATOR, Principal, Role
from tracecore.errors import InvalidArgument, PermissionDenied
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracecore.usecases import issuance, lifecycle, masterdata, operations, recall
from tracecore.usecases.lifecycle import EventContext, EventInput
from tracecore.usecases.writeside import WriteSide

GTIN = "09501101530003"
NOW = 1_790_000_000_000
DAY = 86_400_000
TENANT = "acme"
ADMIN = Principal(TENANT, Role.ADMIN, "a1")
PLANT = Principal(TENANT, Role.LINE, "l1", party_id="PLANT")
DIST = Principal(TENANT, Role.DISTRIBUTOR, "d1", party_id="DIST")
PHARM = Principal(TENANT, Role.PHARMACY, "p1", party_id="PHARM")


@pytest.fixture
def side(tmp_path: Path) -> Iterator[WriteSide]:
    data = DataDir(tmp_path, KeySource.dev())
    opened = WriteSide.open(data, clock=lambda: NOW)
    try:
        yield opened
    finally:
        opened.close()
        data.close()


async def _world(side: WriteSide) -> list[str]:
    """A tenant with a product, a batch and three parties; three commissioned packs at PLANT."""
    await operations.create_tenant(side, Principal(OPERATOR, Role.OPERATOR), TENANT, "Acme")
    await masterdata.register_product(side, ADMIN, TENANT, cpb.Product(gtin=GTIN, name="Amox"))
    await masterdata.add_batch(side, ADMIN, TENANT,
                               cpb.Batch(product=GTIN, lot="L1", expires_on="2031-01-01"))
    for party_id in ("PLANT", "DIST", "PHARM"):
        await masterdata.add_party(side, ADMIN, TENANT,
                                   cpb.Party(party_id=party_id, name=party_id, region="110105"))
    codes = [Code(Scheme.GS1, chunk.product, serial).text()
             async for chunk in issuance.request_codes(side, PLANT, TENANT, "r1", GTIN, "L1", 0,
                                                       3, 0)
             for serial in chunk.serials]
    done = await lifecycle.commission(side, PLANT, TENANT, codes, EventContext())
    assert done.applied and done.changed == 3
    return codes


def test_a_party_bound_credential_acts_as_its_own_party(side: WriteSide) -> None:
    """A line bound to PLANT ships as PLANT without naming it; a distributor cannot ship what
    PLANT holds, and a pharmacy cannot claim to be the distributor."""

    async def scenario() -> None:
        codes = await _world(side)
        refused = await lifecycle.ship(side, DIST, TENANT, codes[:1], "PHARM", EventContext())
        assert not refused.applied
        assert [f.reason for f in refused.failures] == ["is held by PLANT, not DIST"]
        with pytest.raises(PermissionDenied):
            await lifecycle.ship(side, PHARM, TENANT, codes[:1], "PHARM",
                                 EventContext(party_id="DIST"))
        shipped = await lifecycle.ship(side, PLANT, TENANT, codes[:1], "DIST", EventContext())
        assert shipped.applied and shipped.changed == 1
        received = await lifecycle.receive(side, DIST, TENANT, codes[:1], EventContext())
        assert received.applied and received.notes == []

    asyncio.run(scenario())


def test_event_times_are_checked_against_the_injected_clock(side: WriteSide) -> None:
    """An event more than a day after the service's clock, or with a bad offset, is refused."""

    async def scenario() -> None:
        codes = await _world(side)
        with pytest.raises(InvalidArgument) as late:
            await lifecycle.destroy(side, ADMIN, TENANT, codes, False, "",
                                    EventContext(when_ms=NOW + 2 * DAY))
        assert late.value.field == "context.when_ms"
        with pytest.raises(InvalidArgument) as offset:
            await lifecycle.destroy(side, ADMIN, TENANT, codes, False, "",
                                    EventContext(tz_offset="8h"))
        assert offset.value.field == "context.tz_offset"
        with pytest.raises(InvalidArgument) as kind:
            await lifecycle.capture_events(side, ADMIN, TENANT,
                                           [EventInput("RECALL", codes)], False)
        assert kind.value.field == "events[0].kind"

    asyncio.run(scenario())


def test_a_recall_needs_a_reason_and_then_holds_every_pack(side: WriteSide) -> None:
    """A recall without a reason is refused; with one, the batch's packs cannot be shipped."""

    async def scenario() -> None:
        codes = await _world(side)
        with pytest.raises(InvalidArgument) as no_reason:
            await recall.recall_batch(side, ADMIN, TENANT, GTIN, "L1", " ", EventContext())
        assert no_reason.value.field == "reason"
        held = await recall.recall_batch(side, ADMIN, TENANT, GTIN, "L1", "contamination",
                                         EventContext())
        assert held.event_seqs
        refused = await lifecycle.ship(side, PLANT, TENANT, codes, "DIST",
                                       EventContext(best_effort=True))
        assert {f.reason for f in refused.failures} == {"is RECALLED: its batch was recalled"}

    asyncio.run(scenario())


def test_returned_codes_are_voided_and_counted_on_their_pool(side: WriteSide) -> None:
    """Codes handed back unused are voided; the pool says how many came back."""

    async def scenario() -> None:
        await _world(side)
        fresh = [Code(Scheme.GS1, chunk.product, serial).text()
                 async for chunk in issuance.request_codes(side, PLANT, TENANT, "r2", GTIN,
                                                           "L1", 0, 2, 0)
                 for serial in chunk.serials]
        returned = await issuance.return_codes(side, PLANT, TENANT, [*fresh, "junk"], "unused")
        assert returned.voided == 2 and [f.index for f in returned.failures] == [2]
        assert issuance.get_pool(side, PLANT, TENANT, "r2").pool.returned == 2

    asyncio.run(scenario())
