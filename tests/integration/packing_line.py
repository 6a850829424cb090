"""A packaging line over real gRPC: packs of one product's lot commissioned and aggregated."""

from __future__ import annotations

from dataclasses import dataclass

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import lifecycle_pb2_grpc

from tests.integration.conftest import RPC_TIMEOUT_S, Api


@dataclass(frozen=True)
class PackingLine:
    """A tenant's line for ``gtin`` lot ``lot``, whose product is packed 3 units a bundle."""

    api: Api
    tenant: str
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    gtin: str
    lot: str

    def packs(self, n: int, level: int) -> list[str]:
        """``n`` commissioned packs at ``level``."""
        codes = self.api.codes(self.tenant, self.gtin, n, lot=self.lot, level=level)
        response = self.lifecycle.Commission(lpb.CommissionRequest(
            tenant=self.tenant, codes=codes, lot=self.lot), timeout=RPC_TIMEOUT_S)
        assert response.applied, response
        return codes

    def aggregate(self, parent: str, children: list[str], *, partial: bool = False
                  ) -> lpb.LifecycleResponse:
        return self.lifecycle.Aggregate(lpb.AggregateRequest(
            tenant=self.tenant, parent=parent, children=children, partial=partial),
            timeout=RPC_TIMEOUT_S)

    def bundle(self) -> str:
        """A commissioned bundle holding 3 commissioned units."""
        (bundle,) = self.packs(1, cpb.PACKAGING_LEVEL_BUNDLE)
        assert self.aggregate(bundle, self.packs(3, cpb.PACKAGING_LEVEL_UNIT)).applied
        return bundle
