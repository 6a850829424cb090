"""Who may call what, over real gRPC with authentication on: every RPC of both servers against
the one RPC x role table, tokens (revoked, expired, wrong, malformed), party-bound credentials,
client certificates over mutual TLS, public verification and its rate limit, the open services.

The issuance server runs in this process on an event loop thread (as in conftest), so tests can
read its ledgers; verification is served by real worker processes: one with public verification
off (the table walk), one with it on and a tight public rate (the public tests).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib
import os
import pkgutil
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pharmatrace.v1
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from pharmatrace.v1 import logistics_pb2 as spb
from pharmatrace.v1 import printing_pb2 as ppb
from pharmatrace.v1 import trace_pb2 as tpb
from pharmatrace.v1 import verification_pb2 as vpb
from prometheus_client import CollectorRegistry, multiprocess

from codegen_svc import app as codegen_app
from tests.integration.conftest import RPC_TIMEOUT_S, _LoopThread
from tracecore.clock import now_ms
from tracecore.credentials import Role
from tracecore.keys import KeySource
from tracecore.ledger.chain import SEAL_KEY
from tracecore.ledger.store import Ledger
from tracecore.printing import seal
from tracerpc import authz
from tracerpc.authz import TABLE
from tracerpc.certs import DevPki, client_credentials, init_dev_pki, load_tls_files
from tracerpc.metrics import Metrics
from verify_svc.workers import WorkerConfig, WorkerPool

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
#: A server-streaming call that passed the checks may stream until cancelled; this bounds it.
STREAM_TIMEOUT_S = 10.0
#: Public requests a second on the public worker: its burst is one call, refilled in 20 s.
PUBLIC_RATE = 0.05
TENANT_ROLES = (Role.ADMIN, Role.LINE, Role.DISTRIBUTOR, Role.PHARMACY, Role.REGULATOR,
                Role.PUBLIC)
GTIN, LOT, OTHER_GTIN = "09501101530003", "LOT-A1", "09501101530010"
SUPPLIER, SUPPLIER_LOT = "SinoChem API Co.", "SC-2024-07"
PARTIES = {"PLANT": cpb.PARTY_KIND_PLANT, "DIST-1": cpb.PARTY_KIND_DISTRIBUTOR,
           "DIST-2": cpb.PARTY_KIND_DISTRIBUTOR, "PHARM-1": cpb.PARTY_KIND_PHARMACY}
GHOST = "no-such-tenant"


def self_signed(cn: str) -> str:
    """A self-signed client certificate (PEM) with subject ``cn``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


WALK_CERTIFICATE = self_signed("walk-cn")
COMPANY_PREFIX = "0614141"
#: A line controller's public key file, as `pharmatrace line keygen` writes it.
LINE_KEY = seal.KeyPair.generate().public().to_pem()


# -- the RPCs, from the generated descriptors --------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """One RPC of the API as the generated descriptors describe it."""

    path: str
    method: MethodDescriptor

    @property
    def service(self) -> str:
        return self.method.containing_service.full_name

    def request(self, **fields: object) -> Message:
        message: Message = GetMessageClass(self.method.input_type)()
        for name, value in fields.items():
            if name in self.method.input_type.fields_by_name:
                setattr(message, name, value)
        return message


def described_rpcs() -> dict[str, Rpc]:
    """Every RPC of every service in the pharmatrace.v1 modules, by full path."""
    found: dict[str, Rpc] = {}
    for module_info in pkgutil.iter_modules(pharmatrace.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"pharmatrace.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                found[path] = Rpc(path, method)
    return found


RPCS = described_rpcs()


@dataclass(frozen=True)
class Outcome:
    """How a call ended: its status, details, responses and trailing metadata."""

    code: grpc.StatusCode
    details: str
    responses: list[Message] = field(default_factory=list)
    trailing: dict[str, str] = field(default_factory=dict)


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token is not None else ()


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def invoke(channel: grpc.Channel, rpc: Rpc, request: Message, *,
           metadata: tuple[tuple[str, str], ...] = (), timeout: float | None = None
           ) -> Outcome:
    """Calls ``rpc`` with one request message (a one-message stream for client streams) and
    reads every response; never raises for a status."""
    method = rpc.method
    serialize = _serialize
    parse = GetMessageClass(method.output_type).FromString
    timeout = timeout or (STREAM_TIMEOUT_S if method.server_streaming else RPC_TIMEOUT_S)
    options = {"metadata": metadata, "timeout": timeout}
    try:
        if method.client_streaming and method.server_streaming:
            responses = list(channel.stream_stream(rpc.path, serialize, parse)(
                iter([request]), **options))
        elif method.client_streaming:
            responses = [channel.stream_unary(rpc.path, serialize, parse)(
                iter([request]), **options)]
        elif method.server_streaming:
            responses = list(channel.unary_stream(rpc.path, serialize, parse)(request, **options))
        else:
            responses = [channel.unary_unary(rpc.path, serialize, parse)(request, **options)]
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        trailing = {k: str(v) for k, v in (error.trailing_metadata() or ())}
        return Outcome(error.code(), error.details() or "", [], trailing)
    return Outcome(OK, "", responses)


# -- ledger state ------------------------------------------------------------------------------

#: The audit chain's head in the meta database (see tracecore.ledger.access).
AUDIT_HEAD = b"audit:head"


def ledger_fingerprint(ledger: Ledger, *, audit: bool = True) -> str:
    """A digest of every record of every database; without ``audit``, the audit trail and its
    head are left out (refused writes are audited; nothing else may change). The seal over the
    heads is always left out: a running server writes it on its own, from heads counted here."""
    digest = hashlib.sha256()
    with ledger.env.read() as txn:
        for name in sorted(ledger.db):
            if name == "audit" and not audit:
                continue
            digest.update(b"\0db\0" + name.encode())
            for key, value in txn.cursor(db=ledger.db[name]):
                key = bytes(key)
                if name == "meta" and (key == SEAL_KEY or (key == AUDIT_HEAD and not audit)):
                    continue
                digest.update(len(key).to_bytes(4, "big") + key)
                digest.update(len(value).to_bytes(4, "big") + bytes(value))
    return digest.hexdigest()


# -- servers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Sets environment variables (seen by processes started meanwhile), then restores them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def operator_token(codegen: codegen_app.Codegen) -> str:
    """A new platform operator token, as `pharmatrace operator token` makes one."""
    _, token = codegen.data.operator().create_token(Role.OPERATOR, "", "tests", 0, now_ms())
    return token


@dataclass
class Secured:
    """Both servers with authentication on; ``public`` is a verification worker with public
    verification on, counting its metrics in ``metrics_dir``."""

    codegen: codegen_app.Codegen
    issue: grpc.Channel
    verify: grpc.Channel
    public: grpc.Channel
    metrics_dir: Path
    operator: str
    served: dict[str, grpc.Channel] = field(default_factory=dict)

    @classmethod
    def issuance(cls, codegen: codegen_app.Codegen, channel: grpc.Channel) -> Secured:
        """The issuance server alone, reached over ``channel``."""
        return cls(codegen, channel, channel, channel, Path(), operator_token(codegen),
                   {name: channel for name in ("pharmatrace.v1.Admin",
                                               "pharmatrace.v1.CodeIssuance",
                                               "pharmatrace.v1.Lifecycle",
                                               "pharmatrace.v1.LogisticUnits")})

    def call(self, path: str, request: Message, token: str | None = None, *,
             channel: grpc.Channel | None = None) -> Outcome:
        rpc = RPCS[path]
        return invoke(channel or self.served[rpc.service], rpc, request, metadata=bearer(token))

    def ok(self, path: str, request: Message, token: str | None) -> Message:
        outcome = self.call(path, request, token)
        assert outcome.code is OK, f"{path}: {outcome.code.name}: {outcome.details}"
        return outcome.responses[0]

    def ledger(self, tenant: str) -> Ledger:
        return self.codegen.data.get(tenant).ledger

    def rate_limited_total(self) -> float:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.metrics_dir))
        return registry.get_sample_value("pharmatrace_rate_limited_total") or 0.0


def listed_services(channel: grpc.Channel) -> set[str]:
    """The services a server lists through reflection (asked without a credential)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=RPC_TIMEOUT_S)
    return {s.name for r in responses for s in r.list_services_response.service}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    data = tmp_path_factory.mktemp("authz-data")
    metrics_dir = tmp_path_factory.mktemp("authz-public-metrics")
    loop = _LoopThread()
    codegen = loop.run(codegen_app.start(data, KeySource.dev(), "127.0.0.1:0",
                                         Metrics(CollectorRegistry()), tls=None,
                                         authenticate=True))
    config = WorkerConfig(data, "127.0.0.1", 0, dev_keys=True, tls=None, grace_s=1.0,
                          authenticate=True)
    verify = WorkerPool(config, workers=1)
    public = WorkerPool(WorkerConfig(**{**config.__dict__, "public_verify": True,
                                        "public_rate": PUBLIC_RATE}), workers=1)
    channels: list[grpc.Channel] = []
    try:
        verify_port = verify.start()
        with environment(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)):
            public_port = public.start()
        for port in (codegen.port, verify_port, public_port):
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
            channels.append(channel)
        yield Secured(codegen, *channels, metrics_dir, operator_token(codegen))
    finally:
        for channel in channels:
            channel.close()
        public.stop(1.0)
        verify.stop(1.0)
        loop.run(codegen.stop(1.0))
        loop.close()


@pytest.fixture(scope="module")
def served(secured: Secured) -> Secured:
    """``secured`` with each described service mapped to the server that lists it."""
    for channel in (secured.issue, secured.verify):
        for name in listed_services(channel):
            secured.served.setdefault(name, channel)
    return secured


# -- the tenants of the walk -------------------------------------------------------------------


@dataclass
class World:
    """Tenant ``a`` with a token per role, master data and codes; tenant ``b``'s admin."""

    a: str
    b: str
    tokens: dict[Role, str]
    credential_ids: dict[Role, str]
    b_admin: str
    issued: list[str]
    active: list[str]

    @property
    def admin(self) -> str:
        return self.tokens[Role.ADMIN]


def create_tenant(secured: Secured, tenant: str) -> str:
    """Creates ``tenant`` with the operator token; its first admin token."""
    response = secured.ok("/pharmatrace.v1.Admin/CreateTenant",
                          apb.CreateTenantRequest(tenant=tenant, name=f"{tenant} Pharma"),
                          secured.operator)
    assert isinstance(response, apb.CreateTenantResponse)
    return response.admin_token


def create_token(secured: Secured, tenant: str, admin: str, role: Role, party: str = "",
                 expires_at_ms: int = 0) -> tuple[str, str]:
    """A new token of ``tenant``: (token, credential id)."""
    response = secured.ok("/pharmatrace.v1.Admin/CreateToken", apb.CreateTokenRequest(
        tenant=tenant, role=int(role), party_id=party,  # type: ignore[arg-type]
        expires_at_ms=expires_at_ms), admin)
    assert isinstance(response, apb.CreateTokenResponse)
    return response.token, response.credential.credential_id


def issue_codes(secured: Secured, tenant: str, admin: str, count: int) -> list[str]:
    request_id = f"req-{secrets.token_hex(8)}"
    outcome = secured.call("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
        tenant=tenant, product=GTIN, lot=LOT, count=count, request_id=request_id), admin)
    assert outcome.code is OK, outcome
    return [f"(01){c.product}(21){s}" for c in outcome.responses
            for s in c.serials]  # type: ignore[attr-defined]


def lifecycle(secured: Secured, method: str, request: Message, token: str) -> lpb.LifecycleResponse:
    response = secured.ok(f"/pharmatrace.v1.Lifecycle/{method}", request, token)
    assert isinstance(response, lpb.LifecycleResponse)
    assert response.applied and not response.failures, response
    return response


def master_data(secured: Secured, tenant: str, admin: str) -> None:
    """GTIN 09501101530003 with batch LOT-A1 (one supplier lot), and the four parties."""
    secured.ok("/pharmatrace.v1.Admin/RegisterProduct", apb.RegisterProductRequest(
        tenant=tenant, product=cpb.Product(gtin=GTIN, name="Amoxicillin 500 mg")), admin)
    secured.ok("/pharmatrace.v1.Admin/AddBatch", apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
        product=GTIN, lot=LOT, expires_on="2031-06-30", materials=[cpb.MaterialLot(
            material="amoxicillin", supplier=SUPPLIER, supplier_lot=SUPPLIER_LOT)])), admin)
    for party, kind in PARTIES.items():
        secured.ok("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(
            tenant=tenant, party=cpb.Party(party_id=party, name=party, kind=kind,  # type: ignore[arg-type]
                                           region="110105")), admin)
    secured.ok("/pharmatrace.v1.LogisticUnits/RegisterCompanyPrefix",
               spb.RegisterCompanyPrefixRequest(tenant=tenant, company_prefix=COMPANY_PREFIX),
               admin)
    secured.ok("/pharmatrace.v1.LogisticUnits/RequestSsccs", spb.RequestSsccsRequest(
        tenant=tenant, request_id="walk-ssccs", count=2), admin)


def make_world(secured: Secured, a: str, b: str) -> World:
    """Creates tenants ``a`` (master data, a token per role, 12 codes, 8 commissioned at
    PLANT) and ``b``."""
    admin = create_tenant(secured, a)
    b_admin = create_tenant(secured, b)
    master_data(secured, a, admin)
    tokens, ids = {Role.ADMIN: admin}, {Role.ADMIN: admin.split(".")[2]}
    for role in TENANT_ROLES[1:]:
        tokens[role], ids[role] = create_token(secured, a, admin, role)
    tokens[Role.OPERATOR], ids[Role.OPERATOR] = secured.operator, secured.operator.split(".")[2]
    codes = issue_codes(secured, a, admin, 12)
    lifecycle(secured, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes[:8], context=lpb.EventContext(party_id="PLANT")), admin)
    return World(a, b, tokens, ids, b_admin, codes[8:], codes[:8])


@pytest.fixture(scope="module")
def world(served: Secured) -> World:
    return make_world(served, "walk-a", "walk-b")


def requests(w: World, *, harmless: bool) -> dict[str, Message]:
    """A plausible request for each RPC on tenant ``a``: real products, batches, parties and
    codes, so that a call let through would read or change something. With ``harmless``,
    the calls that would take the tenant or its credentials away name something else."""
    a = w.a
    plant, dist = lpb.EventContext(party_id="PLANT"), lpb.EventContext(party_id="DIST-1")
    pharm = lpb.EventContext(party_id="PHARM-1")
    codes = w.active[:2]
    lot = "LOT-NONE" if harmless else LOT
    return {
        "/pharmatrace.v1.Admin/CreateTenant": apb.CreateTenantRequest(tenant=f"{a}-new", name="x"),
        "/pharmatrace.v1.Admin/ListTenants": apb.ListTenantsRequest(),
        "/pharmatrace.v1.Admin/SetTenantOnline": apb.SetTenantOnlineRequest(
            tenant=a, online=harmless, reason="maintenance"),
        "/pharmatrace.v1.Admin/SetLedgerLimit": apb.SetLedgerLimitRequest(
            tenant=a, max_map_size=1 << 40 if harmless else 1 << 20),
        "/pharmatrace.v1.Admin/RegisterProduct": apb.RegisterProductRequest(
            tenant=a, product=cpb.Product(gtin=OTHER_GTIN, name="Ibuprofen 200 mg")),
        "/pharmatrace.v1.Admin/GetProduct": apb.GetProductRequest(tenant=a, product=GTIN),
        "/pharmatrace.v1.Admin/ListProducts": apb.ListProductsRequest(tenant=a),
        "/pharmatrace.v1.Admin/AddBatch": apb.AddBatchRequest(tenant=a, batch=cpb.Batch(
            product=GTIN, lot="LOT-B2", expires_on="2031-06-30")),
        "/pharmatrace.v1.Admin/GetBatch": apb.GetBatchRequest(tenant=a, product=GTIN, lot=LOT),
        "/pharmatrace.v1.Admin/ListBatches": apb.ListBatchesRequest(tenant=a),
        "/pharmatrace.v1.Admin/AddParty": apb.AddPartyRequest(tenant=a, party=cpb.Party(
            party_id="PHARM-9", name="Pharmacy 9", kind=cpb.PARTY_KIND_PHARMACY)),
        "/pharmatrace.v1.Admin/GetParty": apb.GetPartyRequest(tenant=a, party_id="PLANT"),
        "/pharmatrace.v1.Admin/ListParties": apb.ListPartiesRequest(tenant=a),
        "/pharmatrace.v1.Admin/CreateToken": apb.CreateTokenRequest(
            tenant=a, role=apb.ROLE_ADMIN),
        "/pharmatrace.v1.Admin/ListTokens": apb.ListTokensRequest(tenant=a),
        "/pharmatrace.v1.Admin/RevokeToken": apb.RevokeTokenRequest(
            tenant=a, credential_id="000000000000" if harmless else w.credential_ids[Role.LINE]),
        "/pharmatrace.v1.Admin/BindCertificate": apb.BindCertificateRequest(
            tenant=a, certificate_pem=WALK_CERTIFICATE, role=apb.ROLE_ADMIN),
        "/pharmatrace.v1.Admin/ListKeys": apb.ListKeysRequest(tenant=a),
        "/pharmatrace.v1.Admin/RotateKey": apb.RotateKeyRequest(tenant=a),
        "/pharmatrace.v1.Admin/RetireKey": apb.KeyRequest(tenant=a, key_id=999 if harmless else 1),
        "/pharmatrace.v1.Admin/RevokeKey": apb.KeyRequest(tenant=a, key_id=999 if harmless else 1),
        "/pharmatrace.v1.CodeIssuance/RequestCodes": ipb.RequestCodesRequest(
            tenant=a, product=GTIN, lot=LOT, count=2, request_id="walk-request"),
        "/pharmatrace.v1.CodeIssuance/ReturnCodes": ipb.ReturnCodesRequest(
            tenant=a, codes=w.issued[:1], reason=ipb.RETURN_REASON_UNUSED),
        "/pharmatrace.v1.CodeIssuance/GetPool": ipb.GetPoolRequest(
            tenant=a, request_id="walk-request"),
        "/pharmatrace.v1.LogisticUnits/RegisterCompanyPrefix": spb.RegisterCompanyPrefixRequest(
            tenant=a, company_prefix=COMPANY_PREFIX),
        "/pharmatrace.v1.LogisticUnits/RequestSsccs": spb.RequestSsccsRequest(
            tenant=a, request_id="walk-ssccs", count=2),
        "/pharmatrace.v1.LogisticUnits/GetSsccPool": spb.GetSsccPoolRequest(
            tenant=a, request_id="walk-ssccs"),
        "/pharmatrace.v1.LogisticUnits/GetSsccState": spb.GetSsccStateRequest(
            tenant=a, sscc="(00)306141410000000013"),
        "/pharmatrace.v1.Lifecycle/Commission": lpb.CommissionRequest(
            tenant=a, context=plant, codes=w.issued[1:2]),
        "/pharmatrace.v1.Lifecycle/Aggregate": lpb.AggregateRequest(
            tenant=a, context=plant, parent=w.issued[2], children=codes),
        "/pharmatrace.v1.Lifecycle/Disaggregate": lpb.AggregateRequest(
            tenant=a, context=plant, parent=w.issued[2]),
        "/pharmatrace.v1.Lifecycle/Ship": lpb.ShipRequest(
            tenant=a, context=plant, codes=codes, destination="DIST-1"),
        "/pharmatrace.v1.Lifecycle/Receive": lpb.ReceiveRequest(
            tenant=a, context=dist, codes=codes),
        "/pharmatrace.v1.Lifecycle/Decommission": lpb.DecommissionRequest(
            tenant=a, context=pharm, codes=w.active[2:3], target=cpb.CODE_STATUS_DISPENSED),
        "/pharmatrace.v1.Lifecycle/Undo": lpb.UndoRequest(
            tenant=a, context=pharm, codes=w.active[2:3]),
        "/pharmatrace.v1.Lifecycle/Destroy": lpb.DestroyRequest(
            tenant=a, context=plant, codes=w.active[3:4], reason="damaged"),
        "/pharmatrace.v1.Lifecycle/CaptureEvents": lpb.CaptureEventsRequest(
            tenant=a, events=[lpb.LifecycleEvent(kind=lpb.EVENT_KIND_DESTROY, context=plant,
                                                 codes=w.active[4:5], reason="damaged")]),
        "/pharmatrace.v1.Lifecycle/ImportEpcis": lpb.ImportEpcisRequest(
            tenant=a, document='{"type": "EPCISDocument", "epcisBody": {"eventList": []}}'),
        "/pharmatrace.v1.Admin/SetTenantPolicy": apb.SetTenantPolicyRequest(
            tenant=a, policy=apb.TenantPolicy(label_replacement=False)),
        "/pharmatrace.v1.Lifecycle/ReplaceCode": lpb.ReplaceCodeRequest(
            tenant=a, context=plant, old_code=codes[0], new_code=codes[1]),
        "/pharmatrace.v1.Lifecycle/RecallBatch": lpb.RecallBatchRequest(
            tenant=a, product=GTIN, lot=lot, reason="impurity"),
        "/pharmatrace.v1.Lifecycle/RecallMaterial": lpb.RecallMaterialRequest(
            tenant=a, supplier=SUPPLIER, supplier_lot="NONE" if harmless else SUPPLIER_LOT,
            reason="impurity"),
        "/pharmatrace.v1.Lifecycle/WithdrawProduct": lpb.WithdrawProductRequest(
            tenant=a, product="09501101530027" if harmless else GTIN, reason="withdrawn"),
        "/pharmatrace.v1.Verification/Verify": vpb.VerifyRequest(tenant=a, code=codes[0]),
        "/pharmatrace.v1.Verification/VerifyBatch": vpb.VerifyBatchRequest(tenant=a, codes=codes),
        "/pharmatrace.v1.Verification/VerifyStream": vpb.VerifyBatchRequest(
            tenant=a, codes=codes),
        "/pharmatrace.v1.Trace/TraceCode": tpb.TraceCodeRequest(tenant=a, code=codes[0]),
        "/pharmatrace.v1.Trace/ListEvents": tpb.ListEventsRequest(tenant=a),
        "/pharmatrace.v1.Trace/ExportEpcis": tpb.ExportEpcisRequest(tenant=a),
        "/pharmatrace.v1.Trace/LocateBatch": tpb.LocateBatchRequest(
            tenant=a, product=GTIN, lot=LOT),
        "/pharmatrace.v1.Trace/BatchesUsingMaterial": tpb.BatchesUsingMaterialRequest(
            tenant=a, supplier=SUPPLIER, supplier_lot=SUPPLIER_LOT),
        "/pharmatrace.v1.Trace/ListAlerts": tpb.ListAlertsRequest(tenant=a),
        # An unknown kind answers at once; a valid watch would stream until cancelled.
        "/pharmatrace.v1.Trace/WatchAlerts": tpb.WatchAlertsRequest(tenant=a, kind=999),
        "/pharmatrace.v1.Trace/RegionReport": tpb.RegionReportRequest(tenant=a),
        "/pharmatrace.v1.PrintJobs/PrintPool": ppb.PrintPoolRequest(
            tenant=a, request_id="walk-ssccs", sscc=True, format=ppb.PRINT_FORMAT_ZPL,
            line_key=LINE_KEY),
    }


def request_for(path: str, w: World, *, harmless: bool, tenant: str | None = None) -> Message:
    """The plausible request for ``path`` (just the tenant for an RPC not listed above),
    optionally naming another ``tenant``."""
    known = requests(w, harmless=harmless)
    request = known[path] if path in known else RPCS[path].request(tenant=w.a)
    if tenant is not None and "tenant" in request.DESCRIPTOR.fields_by_name:
        request.tenant = tenant  # type: ignore[attr-defined]
    return request


def tenant_state(secured: Secured, tenant: str) -> tuple[str, bytes, bool]:
    """Everything of a tenant another tenant's call could change: its whole ledger (audit trail
    included), its key ring file, and whether it is online."""
    opened = secured.codegen.data.get(tenant)
    return (ledger_fingerprint(opened.ledger), opened.keyring_path.read_bytes(),
            secured.codegen.data.offline_reason(tenant) is None)


# -- the table walk ----------------------------------------------------------------------------

PATHS = sorted(RPCS)


def test_both_servers_serve_every_described_service_and_nothing_else(served: Secured) -> None:
    """Reflection, asked with no credential, lists each described service on one server only."""
    issue, verify = listed_services(served.issue), listed_services(served.verify)
    described = {rpc.service for rpc in RPCS.values()}
    standard = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert (issue | verify) - standard == described
    assert issue & verify == standard


@pytest.mark.parametrize("path", PATHS)
def test_every_rpc_refuses_a_caller_without_credential(served: Secured, world: World,
                                                       path: str) -> None:
    """No token and no client certificate: UNAUTHENTICATED, before anything is read."""
    outcome = served.call(path, request_for(path, world, harmless=False))
    assert outcome.code is UNAUTHENTICATED, outcome
    assert "credential" in outcome.details


@pytest.mark.parametrize("path", PATHS)
def test_every_role_may_call_exactly_what_the_table_allows(served: Secured, world: World,
                                                           path: str) -> None:
    """Each role's token (and the operator's) passes where TABLE allows, else PERMISSION_DENIED."""
    assert path in TABLE, f"{path} has no entry in tracerpc.authz.TABLE"
    for role, token in world.tokens.items():
        outcome = served.call(path, request_for(path, world, harmless=True), token)
        if role in TABLE[path].roles:
            assert outcome.code not in (UNAUTHENTICATED, PERMISSION_DENIED), (role, outcome)
        else:
            assert outcome.code is PERMISSION_DENIED, (role, outcome)
            assert f"{role.name.lower()} role may not" in outcome.details


@pytest.mark.parametrize("path", PATHS)
def test_another_tenants_admin_reads_and_changes_nothing(served: Secured, world: World,
                                                         path: str) -> None:
    """B's admin on A's request: PERMISSION_DENIED as for no tenant; A's state is unchanged."""
    before = tenant_state(served, world.a)
    outcome = served.call(path, request_for(path, world, harmless=False), world.b_admin)
    assert outcome.code is PERMISSION_DENIED, outcome
    assert tenant_state(served, world.a) == before
    ghost = served.call(path, request_for(path, world, harmless=False, tenant=GHOST),
                        world.b_admin)
    assert (ghost.code, ghost.details) == (outcome.code, outcome.details)


# -- tokens ------------------------------------------------------------------------------------


def test_a_revoked_token_is_unauthenticated_on_both_servers(served: Secured,
                                                            world: World) -> None:
    """Once revoked, a token that worked is UNAUTHENTICATED on both servers at once."""
    token, credential = create_token(served, world.a, world.admin, Role.LINE)
    list_products = apb.ListProductsRequest(tenant=world.a)
    verify_batch = vpb.VerifyBatchRequest(tenant=world.a, codes=world.active[:1])
    served.ok("/pharmatrace.v1.Admin/ListProducts", list_products, token)
    served.ok("/pharmatrace.v1.Verification/VerifyBatch", verify_batch, token)
    served.ok("/pharmatrace.v1.Admin/RevokeToken", apb.RevokeTokenRequest(
        tenant=world.a, credential_id=credential), world.admin)
    for path, request in (("/pharmatrace.v1.Admin/ListProducts", list_products),
                          ("/pharmatrace.v1.Verification/VerifyBatch", verify_batch)):
        outcome = served.call(path, request, token)
        assert (outcome.code, outcome.details) == (UNAUTHENTICATED, "credential revoked")


def test_an_expired_token_is_unauthenticated(served: Secured, world: World,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A token past its expiry is UNAUTHENTICATED; one cannot be made already expired."""
    in_an_hour = now_ms() + 3_600_000
    token, _ = create_token(served, world.a, world.admin, Role.PHARMACY,
                            expires_at_ms=in_an_hour)
    request = apb.ListProductsRequest(tenant=world.a)
    served.ok("/pharmatrace.v1.Admin/ListProducts", request, token)
    monkeypatch.setattr(authz, "now_ms", lambda: in_an_hour + 1)
    outcome = served.call("/pharmatrace.v1.Admin/ListProducts", request, token)
    assert (outcome.code, outcome.details) == (UNAUTHENTICATED, "credential expired")
    monkeypatch.undo()
    past = served.call("/pharmatrace.v1.Admin/CreateToken", apb.CreateTokenRequest(
        tenant=world.a, role=apb.ROLE_PHARMACY, expires_at_ms=now_ms() - 1), world.admin)
    assert past.code is grpc.StatusCode.INVALID_ARGUMENT and "expires_at_ms" in past.details


def _forged(tenant: str, credential_id: str | None = None) -> str:
    return f"pt1.{tenant}.{credential_id or secrets.token_hex(6)}.{secrets.token_urlsafe(32)}"


def test_a_wrong_token_is_refused_alike_whether_or_not_its_tenant_exists(
        served: Secured, world: World) -> None:
    """Wrong secret, credential or tenant: one same UNAUTHENTICATED answer, no token echoed."""
    real_id = world.credential_ids[Role.LINE]
    wrong = [_forged(world.a, world.credential_ids[Role.REGULATOR]), _forged(world.a),
             _forged(GHOST), _forged(world.b, real_id)]
    answers = set()
    for token in wrong:
        for path, request in (
                ("/pharmatrace.v1.Admin/ListProducts", apb.ListProductsRequest(tenant=world.a)),
                ("/pharmatrace.v1.Trace/ListEvents", tpb.ListEventsRequest(tenant=world.a))):
            outcome = served.call(path, request, token)
            assert outcome.code is UNAUTHENTICATED, outcome
            assert token.rsplit(".", 1)[1] not in outcome.details
            answers.add(outcome.details)
    assert answers == {"unknown API token"}


@pytest.mark.parametrize("header", [
    "Bearer garbage", "Bearer pt1.", "Bearer pt1.walk-a.0123456789ab", "Basic dXNlcjpwYXNz",
    "Bearer", "bearer pt1.WALK-A.0123456789ab.0123456789012345678901234567890123456789012",
    "Bearer pt1.walk-a.0123456789ab.0123456789012345678901234567890123456789012x",
    "Bearer pt1.walk-a.0123456789ab.0123456789012345678901234567890123456789012 extra",
])
def test_a_malformed_authorization_header_is_unauthenticated(served: Secured, world: World,
                                                             header: str) -> None:
    """Anything but 'Bearer pt1.<tenant>.<id>.<secret>' is UNAUTHENTICATED and is not echoed."""
    for path, request in (
            ("/pharmatrace.v1.Admin/ListProducts", apb.ListProductsRequest(tenant=world.a)),
            ("/pharmatrace.v1.Verification/Verify", vpb.VerifyRequest(tenant=world.a,
                                                                      code=world.active[0]))):
        rpc = RPCS[path]
        outcome = invoke(served.served[rpc.service], rpc, request,
                         metadata=(("authorization", header),))
        assert outcome.code is UNAUTHENTICATED, outcome
        token = header.partition(" ")[2]
        assert not token or token not in outcome.details


def test_a_token_is_accepted_with_any_case_of_bearer(served: Secured, world: World) -> None:
    """The scheme is case-insensitive, as HTTP says: 'bearer' and 'BEARER' work too."""
    for scheme in ("bearer", "BEARER"):
        rpc = RPCS["/pharmatrace.v1.Admin/ListProducts"]
        outcome = invoke(served.issue, rpc, apb.ListProductsRequest(tenant=world.a),
                         metadata=(("authorization", f"{scheme} {world.admin}"),))
        assert outcome.code is OK, outcome


# -- parties and streams -----------------------------------------------------------------------


def test_a_party_bound_credential_acts_only_for_its_party(served: Secured, world: World) -> None:
    """A party's token names no other party (context, events, scans), fills in its own."""
    a, admin = world.a, world.admin
    token, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-1")
    codes = issue_codes(served, a, admin, 3)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Ship", lpb.ShipRequest(
        tenant=a, codes=codes, destination="DIST-1",
        context=lpb.EventContext(party_id="PLANT")), admin)

    other = served.call("/pharmatrace.v1.Lifecycle/Receive", lpb.ReceiveRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="DIST-2")), token)
    assert other.code is PERMISSION_DENIED and "context.party_id" in other.details, other
    captured = served.call("/pharmatrace.v1.Lifecycle/CaptureEvents", lpb.CaptureEventsRequest(
        tenant=a, events=[
            lpb.LifecycleEvent(kind=lpb.EVENT_KIND_RECEIVE, codes=codes[:1]),
            lpb.LifecycleEvent(kind=lpb.EVENT_KIND_RECEIVE, codes=codes[1:2],
                               context=lpb.EventContext(party_id="DIST-2"))]), token)
    assert captured.code is PERMISSION_DENIED, captured
    assert "events[1].context.party_id" in captured.details
    imported = served.call("/pharmatrace.v1.Lifecycle/ImportEpcis", lpb.ImportEpcisRequest(
        tenant=a, document="{}"), token)
    assert imported.code is PERMISSION_DENIED and "CaptureEvents" in imported.details
    scanned = served.call("/pharmatrace.v1.Verification/VerifyBatch", vpb.VerifyBatchRequest(
        tenant=a, codes=codes[:1], context=vpb.ScanContext(party_id="PHARM-1")), token)
    assert scanned.code is PERMISSION_DENIED and "context.party_id" in scanned.details

    lifecycle(served, "Receive", lpb.ReceiveRequest(tenant=a, codes=codes), token)
    traced = served.ok("/pharmatrace.v1.Trace/TraceCode",
                       tpb.TraceCodeRequest(tenant=a, code=codes[0]), admin)
    assert isinstance(traced, tpb.TraceCodeResponse)
    assert (traced.holder, traced.in_transit) == ("DIST-1", False)
    assert traced.history[-1].party_id == "DIST-1"


def test_a_pool_is_printed_only_by_whoever_may_hand_its_codes_back(served: Secured,
                                                                   world: World) -> None:
    """A line credential prints its own pool and its party's, not another line's; the tenant's
    admin prints any."""
    a, admin = world.a, world.admin
    own, _ = create_token(served, a, admin, Role.LINE, party="PLANT")
    same_party, _ = create_token(served, a, admin, Role.LINE, party="PLANT")
    other, _ = create_token(served, a, admin, Role.LINE)
    request_id = f"req-{secrets.token_hex(8)}"
    issued = served.call("/pharmatrace.v1.CodeIssuance/RequestCodes", ipb.RequestCodesRequest(
        tenant=a, product=GTIN, lot=LOT, count=3, request_id=request_id), own)
    assert issued.code is OK, issued
    path = "/pharmatrace.v1.PrintJobs/PrintPool"
    request = ppb.PrintPoolRequest(tenant=a, request_id=request_id, format=ppb.PRINT_FORMAT_CSV,
                                   line_key=LINE_KEY)
    for token in (own, same_party, admin):
        printed = served.call(path, request, token)
        assert printed.code is OK and printed.responses[0].labels == 3, printed  # type: ignore[attr-defined]
    denied = served.call(path, request, other)
    assert denied.code is PERMISSION_DENIED, denied
    assert "request_id" in denied.details and "another credential" in denied.details


def test_a_distributor_traces_only_what_was_in_its_custody(served: Secured,
                                                          world: World) -> None:
    """A distributor's token traces packs it held and lists its own events, nothing else."""
    a, admin = world.a, world.admin
    token, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-1")
    codes = issue_codes(served, a, admin, 2)
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Ship", lpb.ShipRequest(
        tenant=a, codes=codes[:1], destination="DIST-1",
        context=lpb.EventContext(party_id="PLANT")), admin)

    mine = served.call("/pharmatrace.v1.Trace/TraceCode",
                       tpb.TraceCodeRequest(tenant=a, code=codes[0]), token)
    assert mine.code is OK, mine
    other = served.call("/pharmatrace.v1.Trace/TraceCode",
                        tpb.TraceCodeRequest(tenant=a, code=codes[1]), token)
    assert other.code is PERMISSION_DENIED and "custody" in other.details, other
    elsewhere = served.call("/pharmatrace.v1.Trace/ListEvents",
                            tpb.ListEventsRequest(tenant=a, party_id="PLANT"), token)
    assert elsewhere.code is PERMISSION_DENIED and "party_id" in elsewhere.details, elsewhere
    own = served.ok("/pharmatrace.v1.Trace/ListEvents", tpb.ListEventsRequest(tenant=a), token)
    assert isinstance(own, tpb.ListEventsResponse) and own.events
    assert all("DIST-1" in (e.party_id, e.destination) for e in own.events)


def test_a_partys_credential_checks_only_the_bills_its_party_is_on(served: Secured,
                                                                   world: World) -> None:
    """A bill shipped from PLANT to DIST-1: DIST-1's token checks it, DIST-2's token gets the
    answer of a bill never used (nothing shipped, nothing received), the admin sees it all."""
    a, admin = world.a, world.admin
    dist1, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-1")
    dist2, _ = create_token(served, a, admin, Role.DISTRIBUTOR, party="DIST-2")
    codes = issue_codes(served, a, admin, 3)
    bill = cpb.BusinessDocument(type="desadv", id=f"DA-{secrets.token_hex(4)}")
    lifecycle(served, "Commission", lpb.CommissionRequest(
        tenant=a, codes=codes, context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Ship", lpb.ShipRequest(
        tenant=a, codes=codes, destination="DIST-1", documents=[bill],
        context=lpb.EventContext(party_id="PLANT")), admin)
    lifecycle(served, "Receive", lpb.ReceiveRequest(tenant=a, codes=codes[:2],
                                                    documents=[bill]), dist1)

    def check(token: str) -> tpb.CheckReceiptResponse:
        answer = served.ok("/pharmatrace.v1.Trace/CheckReceipt",
                           tpb.CheckReceiptRequest(tenant=a, document=bill), token)
        assert isinstance(answer, tpb.CheckReceiptResponse)
        return answer

    for token in (dist1, admin):
        mine = check(token)
        assert (mine.shipped, mine.received, list(mine.missing)) == (3, 2, codes[2:])
    other = check(dist2)
    assert (other.shipped, other.received, list(other.missing)) == (0, 0, [])
    assert not other.ship_events and not other.receive_events


def test_a_client_stream_is_checked_with_no_message_and_on_every_message(
        served: Secured, world: World) -> None:
    """An empty client stream needs a credential; a later message for another tenant is refused."""
    verify_stream = RPCS["/pharmatrace.v1.Verification/VerifyStream"]
    capture = RPCS["/pharmatrace.v1.Lifecycle/CaptureEvents"]
    for rpc, channel in ((verify_stream, served.verify), (capture, served.issue)):
        streams = {None: UNAUTHENTICATED, world.tokens[Role.LINE]: None}
        for token, expected in streams.items():
            call = (channel.stream_stream if rpc.method.server_streaming
                    else channel.stream_unary)(rpc.path)
            try:
                result = call(iter([]), metadata=bearer(token), timeout=RPC_TIMEOUT_S)
                if rpc.method.server_streaming:
                    list(result)
                code = OK
            except grpc.RpcError as error:
                code = error.code()  # type: ignore[attr-defined]
            if expected is None:
                assert code not in (UNAUTHENTICATED, PERMISSION_DENIED), (rpc.path, code)
            else:
                assert code is expected, (rpc.path, code)
    two = [vpb.VerifyBatchRequest(tenant=world.a, codes=world.active[:1]),
           vpb.VerifyBatchRequest(tenant=world.b, codes=world.active[:1])]
    call = served.verify.stream_stream(verify_stream.path, _serialize,
                                       vpb.VerifyBatchResponse.FromString)
    with pytest.raises(grpc.RpcError) as caught:
        list(call(iter(two), metadata=bearer(world.admin), timeout=RPC_TIMEOUT_S))
    assert caught.value.code() is PERMISSION_DENIED  # type: ignore[attr-defined]


# -- client certificates -----------------------------------------------------------------------


@dataclass
class MutualTls:
    """An issuance server requiring client certificates, with tenants m1 and m2."""

    pki: DevPki
    port: int
    operator: str
    admin: str
    secured: Secured

    def channel(self, client: str) -> grpc.Channel:
        files = next(c for c in self.pki.clients if c.name == client)
        credentials = client_credentials(self.pki.ca, files.certificate, files.key)
        return grpc.secure_channel(f"127.0.0.1:{self.port}", credentials)


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTls]:
    pki = init_dev_pki(tmp_path_factory.mktemp("authz-pki"), clients=("line-1", "pharm-1"))
    loop = _LoopThread()
    codegen = loop.run(codegen_app.start(
        tmp_path_factory.mktemp("authz-mtls-data"), KeySource.dev(), "127.0.0.1:0",
        Metrics(CollectorRegistry()), tls=load_tls_files(pki.server, pki.server_key, pki.ca),
        authenticate=True))
    try:
        files = pki.clients[1]
        channel = grpc.secure_channel(f"127.0.0.1:{codegen.port}", client_credentials(
            pki.ca, files.certificate, files.key))
        secured = Secured.issuance(codegen, channel)
        admin = create_tenant(secured, "m1")
        create_tenant(secured, "m2")
        yield MutualTls(pki, codegen.port, secured.operator, admin, secured)
        channel.close()
    finally:
        loop.run(codegen.stop(1.0))
        loop.close()


def test_a_bound_client_certificate_authenticates_with_its_role_and_party(
        mtls: MutualTls) -> None:
    """A bound certificate acts with its role and party, is unknown elsewhere, dies when revoked."""
    secured = mtls.secured
    secured.ok("/pharmatrace.v1.Admin/AddParty", apb.AddPartyRequest(tenant="m1", party=cpb.Party(
        party_id="PLANT-M", name="Plant", kind=cpb.PARTY_KIND_PLANT)), mtls.admin)
    files = next(c for c in mtls.pki.clients if c.name == "line-1")
    bound = secured.ok("/pharmatrace.v1.Admin/BindCertificate", apb.BindCertificateRequest(
        tenant="m1", certificate_pem=files.certificate.read_text(), role=apb.ROLE_LINE,
        party_id="PLANT-M"), mtls.admin)
    assert isinstance(bound, apb.BindCertificateResponse)
    credential_id = bound.credential.credential_id
    assert credential_id == "cert-" + bound.credential.certificate_sha256[:16]
    assert bound.credential.certificate_cn == "line-1"
    assert bound.credential.certificate_issuer == "CN=pharmatrace development CA"

    line = mtls.channel("line-1")
    list_products = RPCS["/pharmatrace.v1.Admin/ListProducts"]
    assert invoke(line, list_products, apb.ListProductsRequest(tenant="m1")).code is OK
    register = invoke(line, RPCS["/pharmatrace.v1.Admin/RegisterProduct"],
                      apb.RegisterProductRequest(tenant="m1", product=cpb.Product(gtin=GTIN)))
    assert register.code is PERMISSION_DENIED and "line role" in register.details
    commission = invoke(line, RPCS["/pharmatrace.v1.Lifecycle/Commission"],
                        lpb.CommissionRequest(tenant="m1", codes=["x"],
                                              context=lpb.EventContext(party_id="OTHER")))
    assert commission.code is PERMISSION_DENIED and "PLANT-M" in commission.details
    elsewhere = invoke(line, list_products, apb.ListProductsRequest(tenant="m2"))
    assert elsewhere.code is UNAUTHENTICATED
    unbound = invoke(mtls.channel("pharm-1"), list_products, apb.ListProductsRequest(tenant="m1"))
    assert unbound.code is UNAUTHENTICATED

    audit = secured.codegen.data.get("m1").access.audit_records()
    assert [(r.credential_id, r.role, r.method.rsplit("/", 1)[1], r.status)
            for r in audit[-3:]] == [
        (credential_id, apb.ROLE_LINE, "RegisterProduct", "PERMISSION_DENIED"),
        (credential_id, apb.ROLE_LINE, "Commission", "PERMISSION_DENIED"),
        ("certificate pharm-1", apb.ROLE_UNSPECIFIED, "ListProducts", "UNAUTHENTICATED")]

    secured.ok("/pharmatrace.v1.Admin/RevokeToken", apb.RevokeTokenRequest(
        tenant="m1", credential_id=credential_id), mtls.admin)
    revoked = invoke(line, list_products, apb.ListProductsRequest(tenant="m1"))
    assert (revoked.code, revoked.details) == (UNAUTHENTICATED, "credential revoked")
    line.close()


# -- public verification, health, reflection ---------------------------------------------------


def test_public_verification_is_anonymous_only_when_enabled_and_rate_limited(
        served: Secured, world: World) -> None:
    """Only Verify is anonymous, only with --public-verify, and rate-limited with retry-after."""
    verify = RPCS["/pharmatrace.v1.Verification/Verify"]
    request = vpb.VerifyRequest(tenant=world.a, code=world.active[-1])
    assert invoke(served.verify, verify, request).code is UNAUTHENTICATED

    counted = served.rate_limited_total()
    first = invoke(served.public, verify, request)
    assert first.code is OK, first
    assert first.responses[0].verdict == vpb.VERDICT_GENUINE  # type: ignore[attr-defined]
    limited = invoke(served.public, verify, request)
    assert limited.code is grpc.StatusCode.RESOURCE_EXHAUSTED, limited
    assert int(limited.trailing["retry-after-ms"]) > 0
    assert served.rate_limited_total() == counted + 1

    batch = invoke(served.public, RPCS["/pharmatrace.v1.Verification/VerifyBatch"],
                   vpb.VerifyBatchRequest(tenant=world.a, codes=[world.active[-1]]))
    assert batch.code is UNAUTHENTICATED
    public = bearer(world.tokens[Role.PUBLIC])
    assert invoke(served.public, verify, request, metadata=public).code is OK
    assert invoke(served.public, verify, request, metadata=public).code \
        is grpc.StatusCode.RESOURCE_EXHAUSTED
    pharmacy = bearer(world.tokens[Role.PHARMACY])
    assert [invoke(served.public, verify, request, metadata=pharmacy).code
            for _ in range(3)] == [OK] * 3


@pytest.mark.parametrize("header", [None, "Bearer garbage"])
def test_health_and_reflection_answer_anyone(served: Secured, header: str | None) -> None:
    """Health checks and reflection need no credential, and a bad one does not stop them."""
    metadata = (("authorization", header),) if header else ()
    for channel in (served.issue, served.verify, served.public):
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), metadata=metadata, timeout=RPC_TIMEOUT_S)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = list(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            metadata=metadata, timeout=RPC_TIMEOUT_S))
        assert any(s.name.startswith("pharmatrace.v1.")
                   for s in answers[0].list_services_response.service)

