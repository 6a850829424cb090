"""pharmatrace.v1.LogisticUnits: company prefixes and SSCC pools. Protobuf in, use case, protobuf
out."""

from __future__ import annotations

from typing import Any

import grpc
from pharmatrace.v1 import logistics_pb2 as pb
from pharmatrace.v1 import logistics_pb2_grpc

from tracecore.clock import now_ms
from tracecore.ledger.tenants import DataDir
from tracecore.usecases import logistic_units as uc
from tracecore.usecases.writer import Writer


class LogisticUnitsServicer(logistics_pb2_grpc.LogisticUnitsServicer):
    def __init__(self, data: DataDir, writer: Writer) -> None:
        self._data = data
        self._writer = writer

    async def RegisterCompanyPrefix(
        self, request: pb.RegisterCompanyPrefixRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.RegisterCompanyPrefixResponse:
        prefix = await self._writer.run(request.tenant, uc.register_company_prefix,
                                        self._data.get(request.tenant),
                                        request.company_prefix, now_ms())
        return pb.RegisterCompanyPrefixResponse(company_prefix=_prefix(prefix))

    async def ListCompanyPrefixes(
        self, request: pb.ListCompanyPrefixesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ListCompanyPrefixesResponse:
        prefixes = uc.list_company_prefixes(self._data.get(request.tenant))
        return pb.ListCompanyPrefixesResponse(company_prefixes=[_prefix(p) for p in prefixes])

    async def RequestSsccs(
        self, request: pb.RequestSsccsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SsccPool:
        pool = await self._writer.run(
            request.tenant, uc.request_ssccs, self._data.get(request.tenant), request.request_id,
            request.company_prefix, request.extension_digit, request.count, now_ms())
        return _pool(pool)

    async def GetSsccPool(
        self, request: pb.GetSsccPoolRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SsccPool:
        return _pool(uc.get_sscc_pool(self._data.get(request.tenant), request.request_id))

    async def GetSsccState(
        self, request: pb.GetSsccStateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SsccState:
        state = uc.sscc_state(self._data.get(request.tenant), request.sscc)
        return pb.SsccState(sscc=state.sscc, allocated=state.allocated,
                            company_prefix=state.company_prefix)


def _prefix(prefix: uc.CompanyPrefix) -> pb.CompanyPrefix:
    return pb.CompanyPrefix(company_prefix=prefix.company_prefix,
                            registered_at_ms=prefix.registered_at_ms)


def _pool(pool: uc.SsccPool) -> pb.SsccPool:
    return pb.SsccPool(request_id=pool.request_id, company_prefix=pool.company_prefix,
                       extension_digit=pool.extension_digit, count=len(pool.ssccs),
                       created_at_ms=pool.created_at_ms, ssccs=pool.ssccs)
