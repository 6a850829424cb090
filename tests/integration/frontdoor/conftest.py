"""The front door served for real: an issuance server in this process and one verification
worker serving HTTP beside gRPC, over a data directory of their own, reached with httpx.

Each test registers products under GTINs of its own (``Shop.gtin``), since the resolver finds
a product's tenant by its GTIN; each client sends its own X-Forwarded-For address, since the
check page's rate limit counts per client address.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from prometheus_client import CollectorRegistry

from codegen_svc import app as codegen_app
from tests.integration.conftest import RPC_TIMEOUT_S, _LoopThread
from tracecore import gs1
from tracecore.clock import now_ms
from tracecore.codes import Code, Scheme
from tracecore.keys import KeySource
from tracecore.minting import Minter
from tracerpc.metrics import Metrics
from verify_svc.workers import WorkerConfig, WorkerPool

#: The check page's rate per client address in these tests (bursts of twice as many).
PUBLIC_RATE = 5.0
#: How long a request head may take before 408, in these tests.
HEADER_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Door:
    """The running servers: the HTTP front door's URL and the gRPC stubs that feed it."""

    url: str
    admin: admin_pb2_grpc.AdminStub
    issuance: issuance_pb2_grpc.CodeIssuanceStub
    lifecycle: lifecycle_pb2_grpc.LifecycleStub
    codegen: codegen_app.Codegen
    verify_address: str = ""
    """The verification workers' gRPC port, where a caller's context is trusted."""

    def client(self, *, follow_redirects: bool = False) -> httpx.Client:
        """An HTTP client of its own address (X-Forwarded-For); follows no redirect unless
        told."""
        address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        return httpx.Client(base_url=self.url, headers={"X-Forwarded-For": address},
                            timeout=RPC_TIMEOUT_S, follow_redirects=follow_redirects)


@pytest.fixture(scope="session")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    with serving(tmp_path_factory.mktemp("frontdoor-data"), public_rate=PUBLIC_RATE,
                 http_header_timeout_s=HEADER_TIMEOUT_S) as running:
        yield running


@contextlib.contextmanager
def serving(data: Path, **worker_options: Any) -> Iterator[Door]:
    """The issuance server and one verification worker with the front door, over ``data``
    (``worker_options``: more of ``WorkerConfig``'s)."""
    loop = _LoopThread()
    codegen = loop.run(codegen_app.start(data, KeySource.dev(), "127.0.0.1:0",
                                         Metrics(CollectorRegistry()), tls=None,
                                         authenticate=False))
    workers = WorkerPool(WorkerConfig(data, "127.0.0.1", 0, dev_keys=True, tls=None,
                                      grace_s=1.0, authenticate=False, http_port=0,
                                      **worker_options), workers=1)
    channel = None
    try:
        verify_port = workers.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{codegen.port}")
        yield Door(f"http://127.0.0.1:{workers.http_port}", admin_pb2_grpc.AdminStub(channel),
                   issuance_pb2_grpc.CodeIssuanceStub(channel),
                   lifecycle_pb2_grpc.LifecycleStub(channel), codegen,
                   f"127.0.0.1:{verify_port}")
    finally:
        if channel is not None:
            channel.close()
        workers.stop(1.0)
        loop.run(codegen.stop(1.0))
        loop.close()


def new_gtin() -> str:
    body = "0" + "".join(random.choice("0123456789") for _ in range(12))
    return body + str(gs1.check_digit(body))


def new_gln() -> str:
    body = "".join(random.choice("123456789") for _ in range(12))
    return body + str(gs1.check_digit(body))


PLANT = "PLANT-1"
PLANT_NAME = "Hidden Holder Plant Co"


@dataclass(frozen=True)
class Pack:
    """A product with one batch and commissioned packs, in a tenant of its own."""

    tenant: str
    gtin: str
    lot: str
    expires_on: dt.date
    codes: list[str]

    @property
    def expiry(self) -> str:
        return self.expires_on.strftime("%y%m%d")

    def serial(self, i: int = 0) -> str:
        return self.codes[i].split("(21)", 1)[1]

    def digital_link(self, i: int = 0, host: str = "") -> str:
        return f"{host}/01/{self.gtin}/10/{self.lot}/21/{self.serial(i)}?17={self.expiry}"


class Shop:
    """Makes tenants, products with every public field, batches and commissioned packs."""

    def __init__(self, door: Door) -> None:
        self.door = door

    def tenant(self) -> str:
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.door.admin.CreateTenant(apb.CreateTenantRequest(tenant=name, name="Door Pharma"),
                                     timeout=RPC_TIMEOUT_S)
        return name

    def pack(self, count: int = 3, *, expires_on: dt.date | None = None,
             tenant: str | None = None, gtin: str | None = None) -> Pack:
        tenant = tenant or self.tenant()
        gtin = gtin or new_gtin()
        lot = f"L{random.randrange(10**6)}"
        expires = expires_on or dt.date.today() + dt.timedelta(days=700)
        self.door.admin.RegisterProduct(apb.RegisterProductRequest(
            tenant=tenant, product=cpb.Product(
            gtin=gtin, name="Amoxicillin Capsules", generic_name="amoxicillin",
            form="capsule", strength="500 mg", pack_spec="24 capsules / box",
            mah="Door Pharma Holding Ltd", manufacturer="Door Pharma Plant No. 1",
            approval_number="国药准字H20240001")), timeout=RPC_TIMEOUT_S)
        batch = cpb.Batch(
            product=gtin, lot=lot, manufactured_on=(expires - dt.timedelta(days=1000)).isoformat(),
            expires_on=expires.isoformat())
        if expires < dt.date.today():
            # Registered before it expired, as the ledger would hold it: the API refuses to
            # register a batch that has already expired.
            self.door.codegen.data.get(tenant).ledger.add_batch(batch, now_ms())
        else:
            self.door.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=batch),
                                     timeout=RPC_TIMEOUT_S)
        self.party(tenant, PLANT, PLANT_NAME, cpb.PARTY_KIND_PLANT)
        chunks = self.door.issuance.RequestCodes(ipb.RequestCodesRequest(
            tenant=tenant, product=gtin, lot=lot, count=count,
            request_id=f"req-{uuid.uuid4().hex}"), timeout=RPC_TIMEOUT_S)
        codes = [f"(01){c.product}(21){s}" for c in chunks for s in c.serials]
        self.door.lifecycle.Commission(lpb.CommissionRequest(
            tenant=tenant, codes=codes, context=lpb.EventContext(party_id=PLANT)),
            timeout=RPC_TIMEOUT_S)
        return Pack(tenant, gtin, lot, expires, codes)

    def party(self, tenant: str, party_id: str, name: str, kind: int) -> str:
        """A party with a GLN of its own; returns the GLN."""
        gln = new_gln()
        self.door.admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
            party_id=party_id, name=name, gln=gln, region="440305",
            kind=kind)), timeout=RPC_TIMEOUT_S)  # type: ignore[arg-type]
        return gln

    def token(self, tenant: str, role: int, party_id: str = "") -> str:
        return self.door.admin.CreateToken(apb.CreateTokenRequest(
            tenant=tenant, role=role, party_id=party_id),  # type: ignore[arg-type]
            timeout=RPC_TIMEOUT_S).token

    def dispense(self, pack: Pack, i: int = 0) -> None:
        self.door.lifecycle.Decommission(lpb.DecommissionRequest(
            tenant=pack.tenant, codes=[pack.codes[i]], target=cpb.CODE_STATUS_DISPENSED,
            context=lpb.EventContext(party_id=PLANT)), timeout=RPC_TIMEOUT_S)

    def forged(self, pack: Pack) -> str:
        """A code signed with the tenant's key but never issued."""
        key = self.door.codegen.data.get(pack.tenant).keys.active
        (serial,) = Minter(Scheme.GS1, pack.gtin, key.key_id, key.mac).mint(1)
        return Code(Scheme.GS1, pack.gtin, serial).text()

    def link(self, pack: Pack, link_type: str, href: str, lang: str = "",
             title: str = "") -> None:
        self.door.admin.AddProductLink(apb.AddProductLinkRequest(
            tenant=pack.tenant, product=pack.gtin, link=cpb.ProductLink(
                link_type=link_type, href=href, lang=lang, title=title)), timeout=RPC_TIMEOUT_S)

    def recall(self, pack: Pack) -> None:
        self.door.lifecycle.RecallBatch(lpb.RecallBatchRequest(
            tenant=pack.tenant, product=pack.gtin, lot=pack.lot, reason="contamination"),
            timeout=RPC_TIMEOUT_S)


@pytest.fixture(scope="session")
def shop(door: Door) -> Shop:
    return Shop(door)
