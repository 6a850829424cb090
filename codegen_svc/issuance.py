"""pharmatrace.v1.CodeIssuance: code pools for packaging lines. Each method converts its
request, runs one use case, and converts the result."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from pharmatrace.v1 import issuance_pb2 as pb
from pharmatrace.v1 import issuance_pb2_grpc

from codegen_svc.calls import caller
from tracecore.usecases import issuance
from tracecore.usecases.writeside import WriteSide
from tracerpc.metrics import Metrics

Context = grpc.aio.ServicerContext[Any, Any]
_REASONS = {pb.RETURN_REASON_UNUSED: "unused", pb.RETURN_REASON_SCRAPPED: "scrapped"}


class CodeIssuanceServicer(issuance_pb2_grpc.CodeIssuanceServicer):
    def __init__(self, side: WriteSide, metrics: Metrics) -> None:
        self._side = side
        self._metrics = metrics

    async def RequestCodes(self, request: pb.RequestCodesRequest, context: Context
                           ) -> AsyncIterator[pb.CodeChunk]:
        chunks = issuance.request_codes(
            self._side, caller(), request.tenant, request.request_id, request.product,
            request.lot, request.level, request.count,
            request.chunk_size)
        issued = self._metrics.codes_issued.labels(request.tenant)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if chunk.fresh:
                    issued.inc(len(chunk.serials))
                yield pb.CodeChunk(
                    request_id=chunk.request_id, scheme=chunk.scheme,  # type: ignore[arg-type]
                    product=chunk.product, serials=chunk.serials, offset=chunk.offset,
                    total=chunk.total, count=chunk.count)

    async def ReturnCodes(self, request: pb.ReturnCodesRequest, context: Context
                          ) -> pb.ReturnCodesResponse:
        returned = await issuance.return_codes(self._side, caller(), request.tenant,
                                               request.codes, _REASONS.get(request.reason, ""))
        return pb.ReturnCodesResponse(
            voided=returned.voided,
            failures=[pb.CodeFailure(index=f.index, code=f.code, reason=f.reason)
                      for f in returned.failures])

    async def GetPool(self, request: pb.GetPoolRequest, context: Context) -> pb.GetPoolResponse:
        record = issuance.get_pool(self._side, caller(), request.tenant, request.request_id)
        return pb.GetPoolResponse(pool=record.pool)
