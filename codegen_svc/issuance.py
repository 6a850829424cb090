"""pharmatrace.v1.CodeIssuance: code pools for packaging lines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as pb
from pharmatrace.v1 import issuance_pb2_grpc

from codegen_svc.lifecycle import GroupCommitter
from codegen_svc.writer import Writer
from tracecore import issuance
from tracecore.clock import now_ms
from tracecore.codes import Code, parse_many
from tracecore.errors import InvalidArgument, ParseError
from tracecore.events import Event, EventKind
from tracecore.ledger import lifecycle
from tracecore.ledger.tenants import DataDir
from tracerpc.authz import caller_name
from tracerpc.metrics import Metrics

MAX_RETURN = 100_000


class CodeIssuanceServicer(issuance_pb2_grpc.CodeIssuanceServicer):
    def __init__(self, data: DataDir, writer: Writer, committer: GroupCommitter,
                 metrics: Metrics) -> None:
        self._data = data
        self._writer = writer
        self._committer = committer
        self._metrics = metrics

    async def RequestCodes(
        self, request: pb.RequestCodesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CodeChunk]:
        tenant = self._data.get(request.tenant)
        pool_request = issuance.pool_request(
            request.request_id, request.product, request.lot,
            request.level or cpb.PACKAGING_LEVEL_UNIT, request.count,
        )
        chunks = issuance.issue(tenant, pool_request, issuance.chunk_size(request.chunk_size),
                                now_ms)
        issued = self._metrics.codes_issued.labels(tenant.name)
        # The next chunk is minted and committed while the current one is on the wire.
        pending = asyncio.ensure_future(self._writer.run(next, chunks, None))
        try:
            while (chunk := await pending) is not None:
                pending = asyncio.ensure_future(self._writer.run(next, chunks, None))
                if chunk.fresh:
                    issued.inc(len(chunk.serials))
                yield pb.CodeChunk(
                    request_id=chunk.request_id, scheme=chunk.scheme,  # type: ignore[arg-type]
                    product=chunk.product, serials=chunk.serials, offset=chunk.offset,
                    total=chunk.total, count=chunk.count,
                )
        finally:
            # The prefetched chunk is durable but nobody will receive it: a retry replays it, and
            # meets its error too, so neither may mask why this stream ended.
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
            await self._writer.run(chunks.close)

    async def ReturnCodes(
        self, request: pb.ReturnCodesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReturnCodesResponse:
        if not request.codes:
            raise InvalidArgument("at least one code is required", field="codes")
        if len(request.codes) > MAX_RETURN:
            raise InvalidArgument(f"at most {MAX_RETURN:,} codes", field="codes")
        if request.reason not in (pb.RETURN_REASON_UNUSED, pb.RETURN_REASON_SCRAPPED):
            raise InvalidArgument("must be UNUSED or SCRAPPED", field="reason")
        tenant = self._data.get(request.tenant)
        texts = list(request.codes)
        failures: list[pb.CodeFailure] = []
        codes: list[Code] = []
        positions: list[int] = []
        for i, scan in enumerate(parse_many(texts)):
            if isinstance(scan, ParseError):
                failures.append(pb.CodeFailure(index=i, code=texts[i][:200], reason=scan.reason))
            else:
                codes.append(scan.code)
                positions.append(i)
        reason = pb.ReturnReason.Name(request.reason).removeprefix("RETURN_REASON_").lower()
        event = Event(EventKind.VOID, tuple(codes), now_ms(), reason=reason)
        result = await self._committer.submit(
            tenant.name,
            lifecycle.Request([event] if codes else [], best_effort=True, who=caller_name()))
        if result.error is not None:
            raise result.error
        for failure in result.failures:
            i = positions[failure.position]
            failures.append(pb.CodeFailure(index=i, code=texts[i][:200], reason=failure.reason))
        failures.sort(key=lambda f: f.index)
        voided = len(codes) - len(result.failures)
        return pb.ReturnCodesResponse(voided=voided, failures=failures)

    async def GetPool(
        self, request: pb.GetPoolRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetPoolResponse:
        issuance.check_request_id(request.request_id)
        record = self._data.get(request.tenant).ledger.pool(request.request_id)
        return pb.GetPoolResponse(pool=record.pool)
