"""Real servers for the integration tests, and the tenants, products and clients they use.

The issuance server (``codegen_svc.app.start``) runs in this process, on an event loop of its
own in a background thread, so tests can reach its data directory and metrics registry. The
verification server is one real worker process (``verify_svc.workers.WorkerPool``): LMDB allows
an environment to be open only once per process, and the writer already holds it here. Both
listen on 127.0.0.1 with a port the system picks; tests talk to them over real gRPC channels.

Authentication is off, as under `pharmatrace serve --dev`: who may call what is tested on its
own. The servers live for the whole session; every test gets a tenant of its own, so tests
share no ledger state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb
from prometheus_client import CollectorRegistry

from codegen_svc import app as codegen_app
from tracecore.clock import now_ms
from tracecore.codes import Code, Scheme
from tracecore.keys import KeySource
from tracecore.minting import Minter
from tracerpc.metrics import Metrics
from verify_svc.workers import WorkerConfig, WorkerPool

T = TypeVar("T")

#: Every RPC a test makes gives up after this long, so a hung server fails a test, not the run.
RPC_TIMEOUT_S = 30.0
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

GTIN = "09501101530003"
LOT = "LOT-A1"
NMPA_ID = "8612345"


class _LoopThread:
    """An asyncio event loop running forever in a daemon thread; ``run`` waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-server-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass(frozen=True)
class Servers:
    """The running servers: where they listen, their data, and the issuance server's metrics."""

    data: Path
    codegen: codegen_app.Codegen
    registry: CollectorRegistry
    issue_address: str
    verify_address: str


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    data = tmp_path_factory.mktemp("pharmatrace-data")
    loop = _LoopThread()
    registry = CollectorRegistry()
    codegen = loop.run(codegen_app.start(data, KeySource.dev(), "127.0.0.1:0",
                                         Metrics(registry), tls=None, authenticate=False))
    workers = WorkerPool(WorkerConfig(data, "127.0.0.1", 0, dev_keys=True, tls=None,
                                      grace_s=1.0, authenticate=False), workers=1)
    try:
        verify_port = workers.start()
        yield Servers(data, codegen, registry, f"127.0.0.1:{codegen.port}",
                      f"127.0.0.1:{verify_port}")
    finally:
        workers.stop(1.0)
        loop.run(codegen.stop(1.0))
        loop.close()


def _channel(address: str) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def issue_channel(servers: Servers) -> Iterator[grpc.Channel]:
    yield from _channel(servers.issue_address)


@pytest.fixture(scope="session")
def verify_channel(servers: Servers) -> Iterator[grpc.Channel]:
    yield from _channel(servers.verify_address)


@dataclass(frozen=True)
class Api:
    """Stubs of both servers, with the few calls nearly every test makes spelled out."""

    admin: admin_pb2_grpc.AdminStub
    issuance: issuance_pb2_grpc.CodeIssuanceStub
    verification: verification_pb2_grpc.VerificationStub

    @staticmethod
    def new_request_id() -> str:
        return f"req-{uuid.uuid4().hex}"

    @staticmethod
    def codes_of(chunks: Iterable[ipb.CodeChunk]) -> list[str]:
        """The canonical text of every code in ``chunks``: GS1 HRI ``(01)…(21)…``, or NMPA 20
        digits."""
        out: list[str] = []
        for chunk in chunks:
            if chunk.scheme == cpb.SCHEME_GS1:
                out += [f"(01){chunk.product}(21){serial}" for serial in chunk.serials]
            else:
                out += [chunk.product + serial for serial in chunk.serials]
        return out

    def request(
        self,
        tenant: str,
        product: str,
        count: int,
        *,
        request_id: str | None = None,
        lot: str = "",
        chunk_size: int = 0,
        level: int = cpb.PACKAGING_LEVEL_UNSPECIFIED,
    ) -> list[ipb.CodeChunk]:
        """Every chunk of a RequestCodes stream (a fresh request id unless one is given)."""
        request = ipb.RequestCodesRequest(
            tenant=tenant, product=product, count=count, lot=lot, chunk_size=chunk_size,
            level=level,  # type: ignore[arg-type]
            request_id=request_id if request_id is not None else self.new_request_id(),
        )
        return list(self.issuance.RequestCodes(request, timeout=RPC_TIMEOUT_S))

    def codes(self, tenant: str, product: str, count: int, **options: Any) -> list[str]:
        """The canonical text of ``count`` newly issued codes, in issue order."""
        return self.codes_of(self.request(tenant, product, count, **options))

    def pool(self, tenant: str, request_id: str) -> ipb.Pool:
        return self.issuance.GetPool(ipb.GetPoolRequest(tenant=tenant, request_id=request_id),
                                     timeout=RPC_TIMEOUT_S).pool

    def give_back(self, tenant: str, codes: Iterable[str],
                  reason: int = ipb.RETURN_REASON_UNUSED) -> ipb.ReturnCodesResponse:
        return self.issuance.ReturnCodes(
            ipb.ReturnCodesRequest(tenant=tenant, codes=list(codes),
                                   reason=reason),  # type: ignore[arg-type]
            timeout=RPC_TIMEOUT_S,
        )

    def verify(self, tenant: str, code: str, *, region: str = "",
               party_id: str = "") -> vpb.VerifyResponse:
        return self.verification.Verify(
            vpb.VerifyRequest(tenant=tenant, code=code,
                              context=vpb.ScanContext(region=region, party_id=party_id)),
            timeout=RPC_TIMEOUT_S,
        )

    def verify_batch(self, tenant: str, codes: Iterable[str]) -> vpb.VerifyBatchResponse:
        return self.verification.VerifyBatch(
            vpb.VerifyBatchRequest(tenant=tenant, codes=list(codes)), timeout=RPC_TIMEOUT_S)


@pytest.fixture(scope="session")
def api(issue_channel: grpc.Channel, verify_channel: grpc.Channel) -> Api:
    return Api(
        admin_pb2_grpc.AdminStub(issue_channel),
        issuance_pb2_grpc.CodeIssuanceStub(issue_channel),
        verification_pb2_grpc.VerificationStub(verify_channel),
    )


# -- tenants and master data -------------------------------------------------------------------


@dataclass(frozen=True)
class Gs1Product:
    """A registered GS1 product with one batch."""

    tenant: str
    gtin: str
    lot: str
    manufactured_on: str
    expires_on: str

    @property
    def expiry(self) -> str:
        """The batch's expiry as AI (17) writes it: YYMMDD."""
        return dt.date.fromisoformat(self.expires_on).strftime("%y%m%d")


@dataclass(frozen=True)
class NmpaProduct:
    """A registered NMPA product (药品标识码), without a batch."""

    tenant: str
    nmpa_id: str


class Make:
    """Creates tenants and master data through the Admin API."""

    def __init__(self, api: Api, servers: Servers) -> None:
        self._api = api
        self._servers = servers

    def tenant(self) -> str:
        """A new, empty tenant."""
        name = f"t-{uuid.uuid4().hex[:16]}"
        self._api.admin.CreateTenant(apb.CreateTenantRequest(tenant=name, name="Test Pharma Ltd"),
                                     timeout=RPC_TIMEOUT_S)
        return name

    def gs1(self, tenant: str, *, expires_on: dt.date | None = None) -> Gs1Product:
        """GTIN 09501101530003 with batch LOT-A1, expiring in two years unless told."""
        today = dt.date.today()
        made = today - dt.timedelta(days=400)
        expires = expires_on or today + dt.timedelta(days=730)
        self._api.admin.RegisterProduct(apb.RegisterProductRequest(
            tenant=tenant, product=cpb.Product(
                gtin=GTIN, name="Amoxicillin 500 mg capsules", form="capsule",
                strength="500 mg", pack_size=24)), timeout=RPC_TIMEOUT_S)
        batch = cpb.Batch(product=GTIN, lot=LOT, manufactured_on=made.isoformat(),
                          expires_on=expires.isoformat())
        if expires < today:
            # Registered before it expired, as the ledger would hold it: the API refuses to
            # register a batch that has already expired.
            self._servers.codegen.data.get(tenant).ledger.add_batch(batch, now_ms())
        else:
            self._api.admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=batch),
                                     timeout=RPC_TIMEOUT_S)
        return Gs1Product(tenant, GTIN, LOT, made.isoformat(), expires.isoformat())

    def nmpa(self, tenant: str) -> NmpaProduct:
        """NMPA drug identifier 8612345, without a batch."""
        self._api.admin.RegisterProduct(apb.RegisterProductRequest(
            tenant=tenant, product=cpb.Product(
                nmpa_id=NMPA_ID, name="阿莫西林胶囊", form="capsule", strength="0.25 g",
                pack_size=20)), timeout=RPC_TIMEOUT_S)
        return NmpaProduct(tenant, NMPA_ID)


@pytest.fixture(scope="session")
def make(api: Api, servers: Servers) -> Make:
    return Make(api, servers)


@pytest.fixture
def tenant(make: Make) -> str:
    """A new, empty tenant of this test's own."""
    return make.tenant()


@pytest.fixture
def gs1(make: Make, tenant: str) -> Gs1Product:
    """The test tenant's GS1 product (GTIN 09501101530003) and its batch LOT-A1."""
    return make.gs1(tenant)


@pytest.fixture
def nmpa(make: Make, tenant: str) -> NmpaProduct:
    """The test tenant's NMPA product (drug identifier 8612345)."""
    return make.nmpa(tenant)


@pytest.fixture
def forge(servers: Servers) -> Callable[[str, Scheme, str, int], list[str]]:
    """``forge(tenant, scheme, product, n)``: n codes correctly signed with the tenant's active
    key but never stored: what a thief with the key, or a lost unacknowledged pool, would hold."""

    def mint(tenant: str, scheme: Scheme, product: str, n: int) -> list[str]:
        key = servers.codegen.data.get(tenant).keys.active
        serials = Minter(scheme, product, key.key_id, key.mac).mint(n)
        return [Code(scheme, product, serial).text() for serial in serials]

    return mint


# -- refusals ----------------------------------------------------------------------------------

_STACK_TRACE = re.compile(r"Traceback|File \"|line \d+, in |\.py\b")


def check_refusal(
    servers: Servers, status: grpc.StatusCode, field: str | None, call: Callable[[], object]
) -> str:
    """Runs ``call`` (draining a stream), expects it to fail with ``status``, returns the message.

    The message must name ``field`` and carry no stack trace and no server path.
    """
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    error = caught.value
    assert isinstance(error, grpc.Call)
    message = error.details() or ""
    assert error.code() == status, f"{error.code()}: {message}"
    if field is not None:
        assert field in message, f"{message!r} does not name {field!r}"
    assert not _STACK_TRACE.search(message), message
    assert str(servers.data) not in message, message
    return message


@pytest.fixture
def refused(servers: Servers) -> Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]:
    """``refused(status, field, call)``: see ``check_refusal``."""

    def check(status: grpc.StatusCode, field: str | None, call: Callable[[], object]) -> str:
        return check_refusal(servers, status, field, call)

    return check
