"""pharmatrace.v1.Admin: tenants and master data. Protobuf in, tracecore call, protobuf out."""

from __future__ import annotations

import grpc
from pharmatrace.v1 import admin_pb2 as pb
from pharmatrace.v1 import admin_pb2_grpc

from codegen_svc.writer import Writer
from tracecore.clock import now_ms
from tracecore.ledger.tenants import DataDir


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, data: DataDir, writer: Writer) -> None:
        self._data = data
        self._writer = writer

    async def CreateTenant(
        self, request: pb.CreateTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTenantResponse:
        tenant = await self._writer.run(self._data.create, request.tenant, request.name, now_ms())
        return pb.CreateTenantResponse(tenant=tenant.name, active_key_id=tenant.keys.active.key_id)

    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTenantsResponse:
        return pb.ListTenantsResponse(tenants=self._data.names())

    async def RegisterProduct(
        self, request: pb.RegisterProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterProductResponse:
        ledger = self._data.get(request.tenant).ledger
        product = await self._writer.run(ledger.register_product, request.product, now_ms())
        return pb.RegisterProductResponse(product=product)

    async def GetProduct(
        self, request: pb.GetProductRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProductResponse:
        _, product = self._data.get(request.tenant).ledger.product(request.product)
        return pb.GetProductResponse(product=product)

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProductsResponse:
        ledger = self._data.get(request.tenant).ledger
        products, token = ledger.products(request.page_size, request.page_token)
        return pb.ListProductsResponse(products=products, next_page_token=token)

    async def AddBatch(
        self, request: pb.AddBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddBatchResponse:
        ledger = self._data.get(request.tenant).ledger
        batch = await self._writer.run(ledger.add_batch, request.batch, now_ms())
        return pb.AddBatchResponse(batch=batch)

    async def GetBatch(
        self, request: pb.GetBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBatchResponse:
        _, batch = self._data.get(request.tenant).ledger.batch(request.product, request.lot)
        return pb.GetBatchResponse(batch=batch)

    async def ListBatches(
        self, request: pb.ListBatchesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBatchesResponse:
        ledger = self._data.get(request.tenant).ledger
        batches, token = ledger.batches(request.product, request.page_size, request.page_token)
        return pb.ListBatchesResponse(batches=batches, next_page_token=token)

    async def AddParty(
        self, request: pb.AddPartyRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddPartyResponse:
        ledger = self._data.get(request.tenant).ledger
        party = await self._writer.run(ledger.add_party, request.party, now_ms())
        return pb.AddPartyResponse(party=party)

    async def GetParty(
        self, request: pb.GetPartyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPartyResponse:
        _, party = self._data.get(request.tenant).ledger.party(request.party_id)
        return pb.GetPartyResponse(party=party)

    async def ListParties(
        self, request: pb.ListPartiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPartiesResponse:
        ledger = self._data.get(request.tenant).ledger
        parties, token = ledger.parties(request.page_size, request.page_token)
        return pb.ListPartiesResponse(parties=parties, next_page_token=token)
