"""pharmatrace.v1.Admin: tenants, master data, credentials and keys. Each method converts its
request, runs one use case, and converts the result."""

from __future__ import annotations

from typing import Any

import grpc
from pharmatrace.v1 import admin_pb2 as pb
from pharmatrace.v1 import admin_pb2_grpc

from codegen_svc.calls import caller
from tracecore.keys import SigningKey
from tracecore.usecases import credentials, masterdata, operations, partners
from tracecore.usecases.writeside import WriteSide

Context = grpc.aio.ServicerContext[Any, Any]


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, side: WriteSide) -> None:
        self._side = side

    async def CreateTenant(self, request: pb.CreateTenantRequest, context: Context
                           ) -> pb.CreateTenantResponse:
        created = await operations.create_tenant(self._side, caller(), request.tenant,
                                                 request.name, request.time_zone)
        return pb.CreateTenantResponse(tenant=created.tenant, active_key_id=created.active_key_id,
                                       admin_token=created.admin_token)

    async def ListTenants(self, request: pb.ListTenantsRequest, context: Context
                          ) -> pb.ListTenantsResponse:
        return pb.ListTenantsResponse(tenants=operations.list_tenants(self._side, caller()))

    async def RegisterProduct(self, request: pb.RegisterProductRequest, context: Context
                              ) -> pb.RegisterProductResponse:
        product = await masterdata.register_product(self._side, caller(), request.tenant,
                                                    request.product)
        return pb.RegisterProductResponse(product=product)

    async def GetProduct(self, request: pb.GetProductRequest, context: Context
                         ) -> pb.GetProductResponse:
        product = masterdata.get_product(self._side, caller(), request.tenant, request.product)
        return pb.GetProductResponse(product=product)

    async def ListProducts(self, request: pb.ListProductsRequest, context: Context
                           ) -> pb.ListProductsResponse:
        page = masterdata.list_products(self._side, caller(), request.tenant, request.page_size,
                                        request.page_token)
        return pb.ListProductsResponse(products=page.items, next_page_token=page.next_page_token)

    async def AddProductLink(self, request: pb.AddProductLinkRequest, context: Context
                             ) -> pb.AddProductLinkResponse:
        product = await masterdata.add_product_link(self._side, caller(), request.tenant,
                                                    request.product, request.link)
        return pb.AddProductLinkResponse(product=product)

    async def RemoveProductLink(self, request: pb.RemoveProductLinkRequest, context: Context
                                ) -> pb.RemoveProductLinkResponse:
        removed = await masterdata.remove_product_link(
            self._side, caller(), request.tenant, request.product, request.link_type,
            request.lang, request.href)
        return pb.RemoveProductLinkResponse(product=removed.product, removed=removed.link)

    async def AddBatch(self, request: pb.AddBatchRequest, context: Context) -> pb.AddBatchResponse:
        batch = await masterdata.add_batch(self._side, caller(), request.tenant, request.batch)
        return pb.AddBatchResponse(batch=batch)

    async def GetBatch(self, request: pb.GetBatchRequest, context: Context) -> pb.GetBatchResponse:
        batch = masterdata.get_batch(self._side, caller(), request.tenant, request.product,
                                     request.lot)
        return pb.GetBatchResponse(batch=batch)

    async def ListBatches(self, request: pb.ListBatchesRequest, context: Context
                          ) -> pb.ListBatchesResponse:
        page = masterdata.list_batches(self._side, caller(), request.tenant, request.product,
                                       request.page_size, request.page_token)
        return pb.ListBatchesResponse(batches=page.items, next_page_token=page.next_page_token)

    async def AddParty(self, request: pb.AddPartyRequest, context: Context) -> pb.AddPartyResponse:
        party = await masterdata.add_party(self._side, caller(), request.tenant, request.party)
        return pb.AddPartyResponse(party=party)

    async def GetParty(self, request: pb.GetPartyRequest, context: Context) -> pb.GetPartyResponse:
        party = masterdata.get_party(self._side, caller(), request.tenant, request.party_id)
        return pb.GetPartyResponse(party=party)

    async def ListParties(self, request: pb.ListPartiesRequest, context: Context
                          ) -> pb.ListPartiesResponse:
        page = masterdata.list_parties(self._side, caller(), request.tenant, request.page_size,
                                       request.page_token)
        return pb.ListPartiesResponse(parties=page.items, next_page_token=page.next_page_token)

    async def ConfirmParty(self, request: pb.ConfirmPartyRequest, context: Context
                           ) -> pb.ConfirmPartyResponse:
        party = await partners.confirm_party(self._side, caller(), request.tenant,
                                             request.party_id)
        return pb.ConfirmPartyResponse(party=party)

    async def MergeParty(self, request: pb.MergePartyRequest, context: Context
                         ) -> pb.MergePartyResponse:
        party, moved = await partners.merge_party(self._side, caller(), request.tenant,
                                                  request.external, request.into)
        return pb.MergePartyResponse(party=party, packs_moved=moved)

    async def CreateToken(self, request: pb.CreateTokenRequest, context: Context
                          ) -> pb.CreateTokenResponse:
        created = await credentials.create_token(
            self._side, caller(), request.tenant, request.role, request.party_id, request.label,
            request.expires_at_ms)
        return pb.CreateTokenResponse(credential=created.credential.credential,
                                      token=created.token)

    async def ListTokens(self, request: pb.ListTokensRequest, context: Context
                         ) -> pb.ListTokensResponse:
        records = credentials.list_tokens(self._side, caller(), request.tenant)
        return pb.ListTokensResponse(credentials=[r.credential for r in records])

    async def RevokeToken(self, request: pb.RevokeTokenRequest, context: Context
                          ) -> pb.RevokeTokenResponse:
        record = await credentials.revoke_token(self._side, caller(), request.tenant,
                                                request.credential_id)
        return pb.RevokeTokenResponse(credential=record.credential)

    async def BindCertificate(self, request: pb.BindCertificateRequest, context: Context
                              ) -> pb.BindCertificateResponse:
        record = await credentials.bind_certificate(
            self._side, caller(), request.tenant, request.certificate_pem, request.role,
            request.party_id, request.label, request.san_uri)
        return pb.BindCertificateResponse(credential=record.credential)

    async def ListKeys(self, request: pb.ListKeysRequest, context: Context) -> pb.ListKeysResponse:
        keys = credentials.list_keys(self._side, caller(), request.tenant)
        return pb.ListKeysResponse(keys=[_key_info(k) for k in keys])

    async def RotateKey(self, request: pb.RotateKeyRequest, context: Context
                        ) -> pb.KeyChangeResponse:
        return _key_change(await credentials.rotate_key(self._side, caller(), request.tenant))

    async def RetireKey(self, request: pb.KeyRequest, context: Context) -> pb.KeyChangeResponse:
        return _key_change(await credentials.retire_key(self._side, caller(), request.tenant,
                                                        request.key_id))

    async def RevokeKey(self, request: pb.KeyRequest, context: Context) -> pb.KeyChangeResponse:
        return _key_change(await credentials.revoke_key(self._side, caller(), request.tenant,
                                                        request.key_id))

    async def SetTenantOnline(self, request: pb.SetTenantOnlineRequest, context: Context
                              ) -> pb.SetTenantOnlineResponse:
        released = await operations.set_tenant_online(self._side, caller(), request.tenant,
                                                      request.online, request.reason)
        return pb.SetTenantOnlineResponse(tenant=request.tenant, online=request.online,
                                          released=released)

    async def SetLedgerLimit(self, request: pb.SetLedgerLimitRequest, context: Context
                             ) -> pb.SetLedgerLimitResponse:
        limit = await operations.set_ledger_limit(self._side, caller(), request.tenant,
                                                  request.max_map_size)
        return pb.SetLedgerLimitResponse(map_size=limit.map_size, max_map_size=limit.max_map_size,
                                         used_bytes=limit.used_bytes)


    async def SetTenantPolicy(self, request: pb.SetTenantPolicyRequest, context: Context
                              ) -> pb.SetTenantPolicyResponse:
        given = request.policy
        policy = await operations.set_tenant_policy(
            self._side, caller(), request.tenant,
            given.label_replacement if given.HasField("label_replacement") else None,
            given.dispense_elsewhere if given.HasField("dispense_elsewhere") else None,
            given.time_zone if given.HasField("time_zone") else None)
        return pb.SetTenantPolicyResponse(policy=pb.TenantPolicy(
            label_replacement=policy.label_replacement,
            dispense_elsewhere=policy.dispense_elsewhere,
            time_zone=policy.time_zone or "UTC"))

    async def RecountDaily(self, request: pb.RecountDailyRequest, context: Context
                           ) -> pb.RecountDailyResponse:
        done = await operations.recount_daily(self._side, caller(), request.tenant)
        return pb.RecountDailyResponse(time_zone=done.time_zone,
                                       daily_counters=done.daily_counters)


def _key_change(change: credentials.KeyChange) -> pb.KeyChangeResponse:
    return pb.KeyChangeResponse(changed=_key_info(change.changed),
                                active_key_id=change.active_key_id)


def _key_info(key: SigningKey) -> pb.SigningKeyInfo:
    return pb.SigningKeyInfo(key_id=key.key_id, state=key.state.value,
                             created_at_ms=int(key.created_at * 1000),
                             changed_at_ms=int(key.changed_at * 1000))
