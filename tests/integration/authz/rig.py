"""The authorization tests' rig: every described RPC and a plausible request for each, the
servers with authentication on, the tenants of the walk, and the ledger's fingerprint."""

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


def message_bytes(message: Message) -> bytes:
    return message.SerializeToString()


def invoke(channel: grpc.Channel, rpc: Rpc, request: Message, *,
           metadata: tuple[tuple[str, str], ...] = (), timeout: float | None = None
           ) -> Outcome:
    """Calls ``rpc`` with one request message (a one-message stream for client streams) and
    reads every response; never raises for a status."""
    method = rpc.method
    serialize = message_bytes
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


# -- fixtures: each test module that imports them gets its own servers -------------------------


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



@pytest.fixture(scope="module")
def world(served: Secured) -> World:
    return make_world(served, "walk-a", "walk-b")



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
