"""pharmatrace.v1.Admin: tenants and master data. Protobuf in, tracecore call, protobuf out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from pharmatrace.v1 import admin_pb2 as pb
from pharmatrace.v1 import admin_pb2_grpc

from codegen_svc.writer import Writer
from tracecore.clock import now_ms
from tracecore.credentials import Role
from tracecore.errors import InvalidArgument
from tracecore.keys import SigningKey
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.usecases.resolver import add_product_link

#: How long taking a tenant offline waits for the other processes to close its files.
RELEASE_WAIT_S = 5.0


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, data: DataDir, writer: Writer) -> None:
        self._data = data
        self._writer = writer

    async def CreateTenant(
        self, request: pb.CreateTenantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateTenantResponse:
        if len(request.name) > 200:
            raise InvalidArgument("at most 200 characters", field="name")
        tenant = await self._writer.run(self._data.create, request.tenant, request.name, now_ms())
        _, token = await self._writer.run(tenant.access.create_token, Role.ADMIN, "",
                                          "created with the tenant", 0, now_ms())
        return pb.CreateTenantResponse(tenant=tenant.name, active_key_id=tenant.keys.active.key_id,
                                       admin_token=token)

    async def ListTenants(
        self, request: pb.ListTenantsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListTenantsResponse:
        return pb.ListTenantsResponse(tenants=self._data.names())

    async def RegisterProduct(
        self, request: pb.RegisterProductRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RegisterProductResponse:
        ledger = self._data.get(request.tenant).ledger
        product = await self._writer.run(ledger.register_product, request.product, now_ms())
        return pb.RegisterProductResponse(product=product)

    async def GetProduct(
        self, request: pb.GetProductRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetProductResponse:
        _, product = self._data.get(request.tenant).ledger.product(request.product)
        return pb.GetProductResponse(product=product)

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListProductsResponse:
        ledger = self._data.get(request.tenant).ledger
        products, token = ledger.products(request.page_size, request.page_token)
        return pb.ListProductsResponse(products=products, next_page_token=token)

    async def AddProductLink(
        self, request: pb.AddProductLinkRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AddProductLinkResponse:
        ledger = self._data.get(request.tenant).ledger
        product = await self._writer.run(add_product_link, ledger, request.product, request.link)
        return pb.AddProductLinkResponse(product=product)

    async def AddBatch(
        self, request: pb.AddBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AddBatchResponse:
        ledger = self._data.get(request.tenant).ledger
        batch = await self._writer.run(ledger.add_batch, request.batch, now_ms())
        return pb.AddBatchResponse(batch=batch)

    async def GetBatch(
        self, request: pb.GetBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetBatchResponse:
        _, batch = self._data.get(request.tenant).ledger.batch(request.product, request.lot)
        return pb.GetBatchResponse(batch=batch)

    async def ListBatches(
        self, request: pb.ListBatchesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListBatchesResponse:
        ledger = self._data.get(request.tenant).ledger
        batches, token = ledger.batches(request.product, request.page_size, request.page_token)
        return pb.ListBatchesResponse(batches=batches, next_page_token=token)

    async def AddParty(
        self, request: pb.AddPartyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AddPartyResponse:
        ledger = self._data.get(request.tenant).ledger
        party = await self._writer.run(ledger.add_party, request.party, now_ms())
        return pb.AddPartyResponse(party=party)

    async def GetParty(
        self, request: pb.GetPartyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetPartyResponse:
        _, party = self._data.get(request.tenant).ledger.party(request.party_id)
        return pb.GetPartyResponse(party=party)

    async def ListParties(
        self, request: pb.ListPartiesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListPartiesResponse:
        ledger = self._data.get(request.tenant).ledger
        parties, token = ledger.parties(request.page_size, request.page_token)
        return pb.ListPartiesResponse(parties=parties, next_page_token=token)

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CreateTokenResponse:
        access = self._data.get(request.tenant).access
        credential, token = await self._writer.run(
            access.create_token, _role(request.role), request.party_id, request.label,
            request.expires_at_ms, now_ms())
        return pb.CreateTokenResponse(credential=credential, token=token)

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListTokensResponse:
        access = self._data.get(request.tenant).access
        return pb.ListTokensResponse(credentials=access.credentials())

    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RevokeTokenResponse:
        access = self._data.get(request.tenant).access
        credential = await self._writer.run(access.revoke, request.credential_id)
        return pb.RevokeTokenResponse(credential=credential)

    async def BindCertificate(
        self, request: pb.BindCertificateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.BindCertificateResponse:
        access = self._data.get(request.tenant).access
        credential = await self._writer.run(
            access.bind_certificate, request.certificate_cn, _role(request.role),
            request.party_id, request.label, now_ms())
        return pb.BindCertificateResponse(credential=credential)

    async def ListKeys(
        self, request: pb.ListKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListKeysResponse:
        return pb.ListKeysResponse(keys=[_key_info(k) for k in self._data.get(request.tenant).keys])

    async def RotateKey(
        self, request: pb.RotateKeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.KeyChangeResponse:
        tenant = self._data.get(request.tenant)
        return await self._writer.run(self._change_keys, tenant, lambda: tenant.keys.rotate())

    async def RetireKey(
        self, request: pb.KeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.KeyChangeResponse:
        tenant = self._data.get(request.tenant)
        return await self._writer.run(self._change_keys, tenant,
                                      lambda: tenant.keys.retire(request.key_id))

    async def RevokeKey(
        self, request: pb.KeyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.KeyChangeResponse:
        tenant = self._data.get(request.tenant)
        return await self._writer.run(self._change_keys, tenant,
                                      lambda: tenant.keys.revoke(request.key_id))

    async def SetTenantOnline(
        self, request: pb.SetTenantOnlineRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetTenantOnlineResponse:
        # On the writer thread: the tenant's writes in progress end before its files close.
        await self._writer.run(self._data.set_online, request.tenant, request.online,
                               request.reason)
        released = request.online or await self._released(request.tenant)
        return pb.SetTenantOnlineResponse(tenant=request.tenant, online=request.online,
                                          released=released)

    async def SetLedgerLimit(
        self, request: pb.SetLedgerLimitRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetLedgerLimitResponse:
        map_size, limit, used = await self._writer.run(
            self._data.set_ledger_limit, request.tenant, request.max_map_size)
        return pb.SetLedgerLimitResponse(map_size=map_size, max_map_size=limit, used_bytes=used)

    async def _released(self, tenant: str) -> bool:
        """Waits (a little) for the verification workers to close the tenant's files."""
        deadline = time.monotonic() + RELEASE_WAIT_S
        while not await asyncio.to_thread(self._data.released, tenant):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _change_keys(self, tenant: Tenant, change: Callable[[], SigningKey]
                     ) -> pb.KeyChangeResponse:
        changed = change()
        self._data.save_keys(tenant)
        return pb.KeyChangeResponse(changed=_key_info(changed),
                                    active_key_id=tenant.keys.active.key_id)


def _role(value: int) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument("unknown role", field="role") from None


def _key_info(key: SigningKey) -> pb.SigningKeyInfo:
    return pb.SigningKeyInfo(key_id=key.key_id, state=key.state.value,
                             created_at_ms=int(key.created_at * 1000),
                             changed_at_ms=int(key.changed_at * 1000))
