"""pharmatrace.v1.Lifecycle: state changes, group-committed on the writer thread."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as pb
from pharmatrace.v1 import lifecycle_pb2_grpc

from codegen_svc.writer import Batcher, Writer
from tracecore import masterdata
from tracecore.clock import now_ms
from tracecore.codes import Code, parse, parse_many
from tracecore.errors import InvalidArgument, ParseError
from tracecore.events import Event, EventKind
from tracecore.ledger import alerts, exchange, lifecycle, oversight
from tracecore.ledger.tenants import DataDir
from tracecore.oversight import Location
from tracecore.oversight import lot as check_lot
from tracecore.status import Status
from tracerpc.authz import caller_name
from tracerpc.locations import batch_location

MAX_CODES = 100_000
MAX_EVENTS_PER_MESSAGE = 10_000
MAX_STREAM_CODES = 2_000_000
MAX_REASON = 500
_EARLIEST_MS = 946_684_800_000  # 2000-01-01
_DAY_MS = 86_400_000
_TZ = re.compile(r"[+-](?:0\d|1[0-4]):[0-5]\d")
_KINDS = {v: EventKind[pb.EventKind.Name(v).removeprefix("EVENT_KIND_")]
          for v in pb.EventKind.values() if v}


class GroupCommitter(Batcher[str, lifecycle.Request, lifecycle.Result]):
    """Lifecycle requests of one tenant that arrive while the writer is busy are applied in
    its next transaction: many RPCs, one commit, one fsync. The alerts they raise are stored
    once that transaction is durable, before any of them is answered."""

    def __init__(self, writer: Writer, data: DataDir) -> None:
        super().__init__(writer, lambda tenant, requests: _apply(data, tenant, requests))
        self.writer = writer


def _apply(data: DataDir, tenant_name: str, requests: list[lifecycle.Request]
           ) -> list[lifecycle.Result]:
    tenant = data.get(tenant_name)
    results = lifecycle.apply(tenant.ledger, requests, now_ms())
    raised = [a for result in results if result.applied for a in result.alerts]
    if raised:
        alerts.book(tenant.path, tenant.name).append(raised)
    return results


class LifecycleServicer(lifecycle_pb2_grpc.LifecycleServicer):
    def __init__(self, data: DataDir, committer: GroupCommitter) -> None:
        self._data = data
        self._committer = committer

    async def Commission(self, request: pb.CommissionRequest,
                         context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        if request.level and request.level not in cpb.PackagingLevel.values():
            raise InvalidArgument("unknown packaging level", field="level")
        return await self._one(request.tenant, request.context, EventKind.COMMISSION,
                               request.codes, lot=request.lot, level=request.level)

    async def Aggregate(self, request: pb.AggregateRequest,
                        context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        return await self._one(request.tenant, request.context, EventKind.AGGREGATE,
                               request.children, parent=_code(request.parent, "parent"))

    async def Disaggregate(self, request: pb.AggregateRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        return await self._one(request.tenant, request.context, EventKind.DISAGGREGATE,
                               request.children, parent=_code(request.parent, "parent"),
                               allow_empty=True)

    async def Ship(self, request: pb.ShipRequest,
                   context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        masterdata.party_id(request.destination, "destination")
        return await self._one(request.tenant, request.context, EventKind.SHIP, request.codes,
                               destination=request.destination)

    async def Receive(self, request: pb.ReceiveRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        if not request.context.party_id:
            raise InvalidArgument("is required: the receiving party", field="context.party_id")
        return await self._one(request.tenant, request.context, EventKind.RECEIVE, request.codes)

    async def Decommission(self, request: pb.DecommissionRequest,
                           context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        return await self._one(request.tenant, request.context, EventKind.DECOMMISSION,
                               request.codes, target=_target(request.target),
                               reason=_reason(request.reason))

    async def Undo(self, request: pb.UndoRequest,
                   context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        if not request.context.party_id:
            raise InvalidArgument("is required: the party that decommissioned the packs",
                                  field="context.party_id")
        return await self._one(request.tenant, request.context, EventKind.UNDO, request.codes)

    async def Destroy(self, request: pb.DestroyRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> pb.LifecycleResponse:
        kind = EventKind.REPORT_STOLEN if request.stolen else EventKind.DESTROY
        return await self._one(request.tenant, request.context, kind, request.codes,
                               reason=_reason(request.reason))

    async def CaptureEvents(
        self, request_iterator: AsyncIterator[pb.CaptureEventsRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.CaptureEventsResponse:
        tenant_name: str | None = None
        best_effort = False
        events: list[Event] = []
        failures: list[lifecycle.Failure] = []
        received = 0
        codes = 0
        async for message in request_iterator:
            if tenant_name is None:
                tenant_name, best_effort = message.tenant, message.best_effort
            elif message.tenant != tenant_name:
                raise InvalidArgument("must be the same in every message", field="tenant")
            if len(message.events) > MAX_EVENTS_PER_MESSAGE:
                raise InvalidArgument(f"at most {MAX_EVENTS_PER_MESSAGE:,} per message",
                                      field="events")
            for e in message.events:
                codes += len(e.codes)
                if codes > MAX_STREAM_CODES:
                    raise InvalidArgument(f"at most {MAX_STREAM_CODES:,} codes per stream",
                                          field="events.codes")
                event, bad = _event(e, received, f"events[{received}]")
                failures.extend(bad)
                if event is not None:
                    events.append(event)
                received += 1
        if tenant_name is None:
            raise InvalidArgument("the stream had no message", field="events")
        tenant = self._data.get(tenant_name)
        if failures and not best_effort:
            return pb.CaptureEventsResponse(events=received, failures=_failures(failures))
        result = await self._committer.submit(
            tenant.name, lifecycle.Request(events, best_effort, caller_name()))
        if result.error is not None:
            raise result.error
        return pb.CaptureEventsResponse(
            events=received, recorded=len(result.seqs), changed=result.changed,
            duplicates=result.duplicates, failures=_failures(failures + result.failures),
            notes=result.notes,
        )

    async def ImportEpcis(self, request: pb.ImportEpcisRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> pb.ImportEpcisResponse:
        tenant = self._data.get(request.tenant)
        events = exchange.import_events(tenant.ledger, request.document)
        result = await self._committer.submit(
            tenant.name, lifecycle.Request(events, request.best_effort, caller_name()))
        if result.error is not None:
            raise result.error
        notes = list(result.notes)
        if events and result.duplicates == len(events):
            notes.append("every event of this document was recorded before: nothing changed")
        return pb.ImportEpcisResponse(
            events=len(events), recorded=len(result.seqs), changed=result.changed,
            duplicates=result.duplicates, failures=_failures(result.failures), notes=notes,
        )

    async def RecallBatch(self, request: pb.RecallBatchRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> pb.RecallResponse:
        masterdata.product_identifier(request.product)
        check_lot(request.lot)
        return await self._hold(request.tenant, oversight.recall_batch, request.product,
                                request.lot, order=_order(request.context, request.reason,
                                                          context))

    async def RecallMaterial(self, request: pb.RecallMaterialRequest,
                             context: grpc.aio.ServicerContext[Any, Any]) -> pb.RecallResponse:
        if not request.supplier.strip():
            raise InvalidArgument("is required", field="supplier")
        if not request.supplier_lot.strip():
            raise InvalidArgument("is required", field="supplier_lot")
        return await self._hold(request.tenant, oversight.recall_material, request.supplier,
                                request.supplier_lot, order=_order(request.context,
                                                                   request.reason, context))

    async def WithdrawProduct(self, request: pb.WithdrawProductRequest,
                              context: grpc.aio.ServicerContext[Any, Any]) -> pb.RecallResponse:
        masterdata.product_identifier(request.product)
        return await self._hold(request.tenant, oversight.withdraw_product, request.product,
                                order=_order(request.context, request.reason, context))

    async def _hold(self, tenant_name: str, fn: Callable[..., tuple[list[Location], list[int]]],
                    *args: str, order: oversight.Order) -> pb.RecallResponse:
        """A recall or withdrawal: one transaction of its own on the writer thread."""
        ledger = self._data.get(tenant_name).ledger
        locations, seqs = await self._committer.writer.run(fn, ledger, *args, order, now_ms())
        return pb.RecallResponse(batches=[batch_location(loc) for loc in locations],
                                 event_seqs=seqs)

    async def _one(self, tenant_name: str, ctx: pb.EventContext, kind: EventKind,
                   texts: Sequence[str], *, parent: Code | None = None, lot: str = "",
                   level: int = 0, destination: str = "", target: Status | None = None,
                   reason: str = "", allow_empty: bool = False) -> pb.LifecycleResponse:
        tenant = self._data.get(tenant_name)
        codes, bad = _codes(texts, 0, "codes", allow_empty=allow_empty)
        if bad and not ctx.best_effort:
            return pb.LifecycleResponse(applied=False, failures=_failures(bad))
        event = Event(kind, tuple(codes), _when(ctx.when_ms), _tz(ctx.tz_offset),
                      party_id=_party(ctx.party_id), parent=parent, lot=lot, level=level,
                      destination=destination, target=target, reason=reason,
                      event_id=_event_id(ctx.event_id))
        result = await self._committer.submit(
            tenant.name,
            lifecycle.Request([event] if codes or allow_empty else [], ctx.best_effort,
                              caller_name()))
        if result.error is not None:
            raise result.error
        return pb.LifecycleResponse(
            applied=result.applied, event_seqs=result.seqs, changed=result.changed,
            duplicates=result.duplicates, failures=_failures(bad + result.failures),
            notes=result.notes,
        )


def _codes(texts: Sequence[str], event: int, field: str, *, allow_empty: bool = False
           ) -> tuple[list[Code], list[lifecycle.Failure]]:
    if not texts and not allow_empty:
        raise InvalidArgument("at least one code is required", field=field)
    if len(texts) > MAX_CODES:
        raise InvalidArgument(f"at most {MAX_CODES:,} codes", field=field)
    codes: list[Code] = []
    bad: list[lifecycle.Failure] = []
    for text, scan in zip(texts, parse_many(texts), strict=True):
        if isinstance(scan, ParseError):
            bad.append(lifecycle.Failure(event, text[:200], scan.reason))
        else:
            codes.append(scan.code)
    return codes, bad


def _event(e: pb.LifecycleEvent, index: int, field: str
           ) -> tuple[Event | None, list[lifecycle.Failure]]:
    kind = _KINDS.get(e.kind)
    if kind is None:
        raise InvalidArgument("unknown event kind", field=f"{field}.kind")
    if kind in (EventKind.RECALL, EventKind.WITHDRAW):
        raise InvalidArgument("recalls and withdrawals are RecallBatch and WithdrawProduct",
                              field=f"{field}.kind")
    codes, bad = _codes(e.codes, index, f"{field}.codes",
                        allow_empty=kind is EventKind.DISAGGREGATE)
    parent = _code(e.parent, f"{field}.parent") if e.parent else None
    if kind in (EventKind.AGGREGATE, EventKind.DISAGGREGATE) and parent is None:
        raise InvalidArgument("is required for aggregation", field=f"{field}.parent")
    if kind is EventKind.SHIP:
        masterdata.party_id(e.destination, f"{field}.destination")
    if e.level not in cpb.PackagingLevel.values():
        raise InvalidArgument("unknown packaging level", field=f"{field}.level")
    event = Event(
        kind, tuple(codes), _when(e.context.when_ms), _tz(e.context.tz_offset),
        party_id=_party(e.context.party_id), parent=parent, lot=e.lot, level=e.level,
        destination=e.destination,
        target=_target(e.target) if kind is EventKind.DECOMMISSION else None,
        reason=_reason(e.reason), event_id=_event_id(e.context.event_id),
    )
    return event, bad


def _code(text: str, field: str) -> Code:
    if not text:
        raise InvalidArgument("is required", field=field)
    try:
        return parse(text).code
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field=field) from exc


def _target(value: int) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise InvalidArgument("unknown status", field="target") from None


def _when(when_ms: int) -> int:
    """The event time: now when not given; not before 2000, not more than a day ahead."""
    if not when_ms:
        return now_ms()
    if not _EARLIEST_MS <= when_ms <= now_ms() + _DAY_MS:
        raise InvalidArgument("must be epoch milliseconds between 2000 and tomorrow",
                              field="context.when_ms")
    return when_ms


def _tz(text: str) -> str:
    if not text:
        return "+00:00"
    if not _TZ.fullmatch(text):
        raise InvalidArgument("must be a time-zone offset like +08:00", field="context.tz_offset")
    return text


def _party(party_id: str) -> str:
    return masterdata.party_id(party_id, "context.party_id") if party_id else ""


def _order(ctx: pb.EventContext, reason: str, context: grpc.aio.ServicerContext[Any, Any]
           ) -> oversight.Order:
    if not reason.strip():
        raise InvalidArgument("is required: why the packs come off the market", field="reason")
    return oversight.Order(reason=_reason(reason), when_ms=ctx.when_ms or now_ms(),
                           who=caller_name(), party_id=_party(ctx.party_id),
                           tz_offset=_tz(ctx.tz_offset))


def _reason(text: str) -> str:
    if len(text) > MAX_REASON:
        raise InvalidArgument(f"at most {MAX_REASON} characters", field="reason")
    return text


def _event_id(text: str) -> str:
    if len(text) > 256:
        raise InvalidArgument("at most 256 characters", field="context.event_id")
    return text


def _failures(failures: Sequence[lifecycle.Failure]) -> list[pb.EventFailure]:
    return [pb.EventFailure(event_index=f.event, code=f.code, reason=f.reason) for f in failures]
