"""pharmatrace.v1.Lifecycle: state changes of packs. Each method converts its request, runs one
use case, and converts the result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as pb
from pharmatrace.v1 import lifecycle_pb2_grpc

from codegen_svc.calls import caller
from tracecore.errors import InvalidArgument
from tracecore.lifecycle_request import Failure
from tracecore.usecases import lifecycle, partners, recall
from tracecore.usecases.lifecycle import EventContext, EventInput, Outcome
from tracecore.usecases.writeside import WriteSide
from tracerpc.locations import batch_location

Context = grpc.aio.ServicerContext[Any, Any]
#: Bounds on a CaptureEvents stream, checked as it arrives.
MAX_EVENTS_PER_MESSAGE = 10_000
MAX_STREAM_CODES = 2_000_000
_KINDS = {v: pb.EventKind.Name(v).removeprefix("EVENT_KIND_") for v in pb.EventKind.values()
          if v}


class LifecycleServicer(lifecycle_pb2_grpc.LifecycleServicer):
    def __init__(self, side: WriteSide) -> None:
        self._side = side

    async def Commission(self, request: pb.CommissionRequest, context: Context
                         ) -> pb.LifecycleResponse:
        return _response(await lifecycle.commission(
            self._side, caller(), request.tenant, request.codes, _context(request.context),
            lot=request.lot, level=request.level))

    async def Aggregate(self, request: pb.AggregateRequest, context: Context
                        ) -> pb.LifecycleResponse:
        return _response(await lifecycle.aggregate(
            self._side, caller(), request.tenant, request.parent, request.children,
            _context(request.context), partial=request.partial))

    async def Disaggregate(self, request: pb.AggregateRequest, context: Context
                           ) -> pb.LifecycleResponse:
        return _response(await lifecycle.disaggregate(
            self._side, caller(), request.tenant, request.parent, request.children,
            _context(request.context)))

    async def ReplaceCode(self, request: pb.ReplaceCodeRequest, context: Context
                          ) -> pb.LifecycleResponse:
        return _response(await lifecycle.replace_code(
            self._side, caller(), request.tenant, request.old_code, request.new_code,
            request.reason, _context(request.context)))

    async def Ship(self, request: pb.ShipRequest, context: Context) -> pb.LifecycleResponse:
        return _response(await lifecycle.ship(
            self._side, caller(), request.tenant, request.codes, request.destination,
            _context(request.context), _documents(request.documents)))

    async def Receive(self, request: pb.ReceiveRequest, context: Context) -> pb.LifecycleResponse:
        return _response(await lifecycle.receive(
            self._side, caller(), request.tenant, request.codes, _context(request.context),
            _documents(request.documents)))

    async def Decommission(self, request: pb.DecommissionRequest, context: Context
                           ) -> pb.LifecycleResponse:
        return _response(await lifecycle.decommission(
            self._side, caller(), request.tenant, request.codes, request.target, request.reason,
            _context(request.context)))

    async def Undo(self, request: pb.UndoRequest, context: Context) -> pb.LifecycleResponse:
        return _response(await lifecycle.undo(
            self._side, caller(), request.tenant, request.codes, _context(request.context)))

    async def Destroy(self, request: pb.DestroyRequest, context: Context) -> pb.LifecycleResponse:
        return _response(await lifecycle.destroy(
            self._side, caller(), request.tenant, request.codes, request.stolen, request.reason,
            _context(request.context)))

    async def CaptureEvents(self, request_iterator: AsyncIterator[pb.CaptureEventsRequest],
                            context: Context) -> pb.CaptureEventsResponse:
        tenant: str | None = None
        best_effort = False
        events: list[EventInput] = []
        codes = 0
        async for message in request_iterator:
            if tenant is None:
                tenant, best_effort = message.tenant, message.best_effort
            elif message.tenant != tenant:
                raise InvalidArgument("must be the same in every message", field="tenant")
            if len(message.events) > MAX_EVENTS_PER_MESSAGE:
                raise InvalidArgument(f"at most {MAX_EVENTS_PER_MESSAGE:,} per message",
                                      field="events")
            for e in message.events:
                codes += len(e.codes)
                if codes > MAX_STREAM_CODES:
                    raise InvalidArgument(f"at most {MAX_STREAM_CODES:,} codes per stream",
                                          field="events.codes")
                events.append(EventInput(
                    _KINDS.get(e.kind, ""), list(e.codes), _context(e.context), e.parent, e.lot,
                    e.level, e.destination, e.target, e.reason, e.partial,
                    _documents(e.documents)))
        if tenant is None:
            raise InvalidArgument("the stream had no message", field="events")
        outcome = await lifecycle.capture_events(self._side, caller(), tenant, events,
                                                 best_effort)
        return pb.CaptureEventsResponse(
            events=outcome.events, recorded=len(outcome.event_seqs), changed=outcome.changed,
            duplicates=outcome.duplicates, failures=_failures(outcome.failures),
            notes=outcome.notes)

    async def RegisterCodes(self, request_iterator: AsyncIterator[pb.RegisterCodesRequest],
                            context: Context) -> AsyncIterator[pb.RegisterCodesResponse]:
        tenant: str | None = None
        async for message in request_iterator:
            if tenant is None:
                tenant = message.tenant
            elif message.tenant != tenant:
                raise InvalidArgument("must be the same in every message", field="tenant")
            done = await partners.register_codes(
                self._side, caller(), tenant, list(message.codes), minted_by=message.minted_by,
                source=message.source, unused=message.unused)
            yield pb.RegisterCodesResponse(
                registered=done.registered, known=done.known,
                failures=[pb.EventFailure(code=code, reason=reason)
                          for code, reason in done.refused])

    async def ImportEpcis(self, request: pb.ImportEpcisRequest, context: Context
                          ) -> pb.ImportEpcisResponse:
        outcome = await lifecycle.import_epcis(self._side, caller(), request.tenant,
                                               request.document, request.best_effort)
        return pb.ImportEpcisResponse(
            events=outcome.events, recorded=len(outcome.event_seqs), changed=outcome.changed,
            duplicates=outcome.duplicates, failures=_failures(outcome.failures),
            notes=outcome.notes)

    async def RecallBatch(self, request: pb.RecallBatchRequest, context: Context
                          ) -> pb.RecallResponse:
        return _recalled(await recall.recall_batch(
            self._side, caller(), request.tenant, request.product, request.lot, request.reason,
            _context(request.context)))

    async def RecallMaterial(self, request: pb.RecallMaterialRequest, context: Context
                             ) -> pb.RecallResponse:
        return _recalled(await recall.recall_material(
            self._side, caller(), request.tenant, request.supplier, request.supplier_lot,
            request.reason, _context(request.context)))

    async def WithdrawProduct(self, request: pb.WithdrawProductRequest, context: Context
                              ) -> pb.RecallResponse:
        return _recalled(await recall.withdraw_product(
            self._side, caller(), request.tenant, request.product, request.reason,
            _context(request.context)))


def _context(ctx: pb.EventContext) -> EventContext:
    return EventContext(ctx.party_id, ctx.when_ms, ctx.tz_offset, ctx.event_id, ctx.best_effort)


def _response(outcome: Outcome) -> pb.LifecycleResponse:
    return pb.LifecycleResponse(
        applied=outcome.applied, event_seqs=outcome.event_seqs, changed=outcome.changed,
        duplicates=outcome.duplicates, failures=_failures(outcome.failures),
        notes=outcome.notes)


def _recalled(held: recall.Held) -> pb.RecallResponse:
    return pb.RecallResponse(batches=[batch_location(loc) for loc in held.batches],
                             event_seqs=held.event_seqs)


def _documents(documents: Sequence[cpb.BusinessDocument]) -> list[tuple[str, str, str]]:
    return [(d.type, d.id, d.counterparty) for d in documents]


def _failures(failures: Sequence[Failure]) -> list[pb.EventFailure]:
    return [pb.EventFailure(event_index=f.event, code=f.code, reason=f.reason, field=f.field)
            for f in failures]
