"""Who may call what: the one table of RPC x role, authentication, tenant and party checks,
public rate limits, and the audit record of every write."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.clock import now_ms
from tracecore.credentials import OPERATOR, Principal, Role, parse_token
from tracecore.errors import (
    NotFound,
    PermissionDenied,
    RateLimited,
    TraceError,
    Unauthenticated,
)
from tracecore.ledger import alerts, security_log
from tracecore.ledger.tenants import DataDir
from tracecore.oversight import AlertKind, AlertRecord, AlertSource, Raised
from tracecore.ratelimit import RateLimiter
from tracecore.refusals import Burst, BurstPolicy, Reason, Refusal, RefusalWatch, reason_of
from tracecore.usecases import (
    credentials,
    issuance,
    lifecycle,
    logistic_units,
    masterdata,
    operations,
    oversight,
    partners,
    printing,
    recall,
    reports,
    trace,
    verification,
)
from tracecore.usecases.declare import Scope, UseCase, declaration
from tracerpc.certs import peer_certificate, peer_identity

log = logging.getLogger("pharmatrace.audit")
security = logging.getLogger("pharmatrace.security")

A, L, D, P, R, U, OP = (Role.ADMIN, Role.LINE, Role.DISTRIBUTOR, Role.PHARMACY, Role.REGULATOR,
                        Role.PUBLIC, Role.OPERATOR)
_READERS = frozenset({A, L, D, P, R})


def _rpcs(service: str, **use_cases: Callable[..., Any]) -> dict[str, UseCase]:
    """RPC name -> the declaration of the use case its servicer method runs."""
    return {f"/pharmatrace.v1.{service}/{m}": declaration(fn) for m, fn in use_cases.items()}


#: Every RPC and the use case it runs: the roles that may call it and whether it writes come
#: from the use case's declaration. A method missing here is refused to everyone.
TABLE: dict[str, UseCase] = {
    **_rpcs("Admin", CreateTenant=operations.create_tenant,
            SetTenantOnline=operations.set_tenant_online,
            SetLedgerLimit=operations.set_ledger_limit, ListTenants=operations.list_tenants,
            SetTenantPolicy=operations.set_tenant_policy,
            RecountDaily=operations.recount_daily,
            RegisterProduct=masterdata.register_product, AddBatch=masterdata.add_batch,
            AddParty=masterdata.add_party, GetProduct=masterdata.get_product,
            ListProducts=masterdata.list_products, GetBatch=masterdata.get_batch,
            ListBatches=masterdata.list_batches, GetParty=masterdata.get_party,
            ListParties=masterdata.list_parties, CreateToken=credentials.create_token,
            ListTokens=credentials.list_tokens, RevokeToken=credentials.revoke_token,
            BindCertificate=credentials.bind_certificate, ListKeys=credentials.list_keys,
            RotateKey=credentials.rotate_key, RetireKey=credentials.retire_key,
            RevokeKey=credentials.revoke_key, AddProductLink=masterdata.add_product_link,
            RemoveProductLink=masterdata.remove_product_link,
            ConfirmParty=partners.confirm_party, MergeParty=partners.merge_party),
    **_rpcs("CodeIssuance", RequestCodes=issuance.request_codes,
            ReturnCodes=issuance.return_codes, GetPool=issuance.get_pool),
    **_rpcs("Lifecycle", Commission=lifecycle.commission, Aggregate=lifecycle.aggregate,
            Disaggregate=lifecycle.disaggregate, Ship=lifecycle.ship, Receive=lifecycle.receive,
            Decommission=lifecycle.decommission, Undo=lifecycle.undo, Destroy=lifecycle.destroy,
            CaptureEvents=lifecycle.capture_events, ImportEpcis=lifecycle.import_epcis,
            RecallBatch=recall.recall_batch, RecallMaterial=recall.recall_material,
            WithdrawProduct=recall.withdraw_product, ReplaceCode=lifecycle.replace_code,
            RegisterCodes=partners.register_codes),
    **_rpcs("Verification", Verify=verification.verify, VerifyBatch=verification.verify_batch,
            VerifyStream=verification.verify_batch),
    **_rpcs("Trace", TraceCode=trace.trace_code, ListEvents=trace.list_events,
            ExportEpcis=trace.export_epcis, LocateBatch=oversight.locate_batch,
            BatchesUsingMaterial=oversight.batches_using_material,
            ListAlerts=oversight.list_alerts, WatchAlerts=oversight.watch_alerts,
            RegionReport=reports.region_report, CheckReceipt=partners.check_receipt),
    **_rpcs("LogisticUnits", RegisterCompanyPrefix=logistic_units.register_company_prefix,
            ListCompanyPrefixes=logistic_units.list_company_prefixes,
            RequestSsccs=logistic_units.request_ssccs, GetSsccPool=logistic_units.get_sscc_pool,
            GetSsccState=logistic_units.sscc_state),
    **_rpcs("PrintJobs", PrintPool=printing.print_pool),
}

#: Methods that change state: each call leaves one audit record.
WRITES = frozenset(m for m, use_case in TABLE.items() if use_case.writes)
#: Answered to anyone: the standard health and reflection services.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_OPERATOR_METHODS = frozenset(m for m, use_case in TABLE.items() if use_case.scope is Scope.PLATFORM
                               or OP in use_case.roles)
#: Methods whose request carries events of any party inside one opaque document.
_WHOLE_DOCUMENTS = frozenset({"/pharmatrace.v1.Lifecycle/ImportEpcis"})


AuditSink = Callable[[str, lpb.AuditRecord], Awaitable[None]]

#: The authenticated caller of the RPC being handled, for servicers that record who did it.
CALLER: ContextVar[Principal | None] = ContextVar("pharmatrace_caller", default=None)


def caller_name() -> str:
    """'credential/role' of the current caller, for event records ("" when unknown)."""
    principal = CALLER.get()
    if principal is None:
        return ""
    return f"{principal.credential_id or 'anonymous'}/{principal.role.name.lower()}"


@dataclass
class Authorizer:
    """Authenticates and authorises each call before its handler runs."""

    data: DataDir
    enabled: bool = True
    public_verify: bool = False
    public_limit: RateLimiter | None = None
    audit: AuditSink | None = None
    refusals: RefusalWatch = dataclasses.field(
        default_factory=lambda: RefusalWatch(BurstPolicy.from_env()))

    def authenticate(self, method: str, request: Message,
                     context: grpc.aio.ServicerContext[Any, Any]) -> Principal | None:
        """Who is calling (None for the open services); Unauthenticated when nobody known.
        ``authorize`` then decides; apart, so that a refused write is audited with its caller."""
        if method.startswith(OPEN_PREFIXES):
            return None
        tenant = getattr(request, "tenant", "")
        peer = context.peer() or ""
        if not self.enabled:
            return Principal(tenant, Role.ADMIN, peer=peer)
        return self._authenticate(method, tenant, context, peer)

    def authorize(self, method: str, request: Message, principal: Principal | None) -> None:
        """Whether ``principal`` may make this request: PermissionDenied (or RateLimited) if
        not; fills in the credential's party when the request names none."""
        if principal is None or not self.enabled:
            return
        self._check_role(method, principal)
        if method not in _OPERATOR_METHODS and principal.tenant != getattr(request, "tenant", ""):
            raise PermissionDenied("this credential belongs to another tenant", field="tenant")
        if principal.role is Role.PUBLIC and self.public_limit is not None:
            self.public_limit.take(principal.credential_id or _host(principal.peer))
        if principal.party_id:
            if method in _WHOLE_DOCUMENTS:
                # The events inside a document name their own parties; a party's credential
                # sends its events with CaptureEvents, where each one is checked.
                raise PermissionDenied(f"a credential that acts for party {principal.party_id} "
                                       "may not import whole documents; use CaptureEvents")
            _bind_party(request, principal.party_id)

    def check_empty_stream(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """A client stream that ended before its first message still needs a caller who may
        call the method (there is no tenant to check it against)."""
        if not self.enabled or method.startswith(OPEN_PREFIXES):
            return
        self._check_role(method, self._authenticate(method, "", context, context.peer() or ""))

    def check_stream_message(self, principal: Principal | None, request: Message) -> None:
        """Every message of a client stream stays within the caller's tenant."""
        if principal is None or not self.enabled:
            return
        if getattr(request, "tenant", principal.tenant) != principal.tenant:
            raise PermissionDenied("this credential belongs to another tenant", field="tenant")
        if principal.party_id:
            _bind_party(request, principal.party_id)

    async def record(self, method: str, principal: Principal | None, request: Message | None,
                     code: grpc.StatusCode) -> None:
        """One audit record for a write, in the tenant it concerns."""
        if self.audit is None or principal is None or method not in WRITES:
            return
        tenant = getattr(request, "tenant", "") if request is not None else principal.tenant
        entry = lpb.AuditRecord(
            at_ms=now_ms(), credential_id=principal.credential_id,
            role=int(principal.role), peer=principal.peer,  # type: ignore[arg-type]
            method=method, summary=summarize(request) if request is not None else "(stream)",
            status=code.name,
        )
        # In the caller's own trail: a call refused for naming another tenant leaves that
        # tenant untouched. The platform's calls are in its trail and the tenant's.
        targets = {principal.tenant or tenant}
        if principal.tenant == OPERATOR and tenant:
            targets.add(tenant)
        for target in filter(None, targets):
            try:
                await self.audit(target, entry)
            except TraceError as exc:  # e.g. the named tenant does not exist: nothing to audit
                log.info("no audit record in %r: %s", target, exc)

    def slowing(self) -> bool:
        """Whether any address is held back now (``delay_ms`` is 0 for every call if not)."""
        return self.refusals.slowing()

    def delay_ms(self, context: grpc.aio.ServicerContext[Any, Any]) -> int:
        """How long to hold this call first: its address is slowed after a burst of refusals."""
        return self.refusals.delay_ms(_host(context.peer() or ""), now_ms())

    async def refused(self, method: str, principal: Principal | None, request: Message | None,
                      context: grpc.aio.ServicerContext[Any, Any], error: TraceError
                      ) -> Refusal:
        """Records a call refused by authentication or authorisation: in the security log,
        in the trail of the tenant it names (where this process keeps trails), and as an
        alert of that tenant when it completes a burst."""
        tenant, credential = self._claimed(principal, request, context)
        refusal = Refusal(now_ms(), reason_of(error), method, _host(context.peer() or ""),
                          tenant, credential,
                          principal.role.name.lower() if principal is not None else "")
        known = self._exists(tenant)
        await asyncio.to_thread(security_log.append, self.data.root, refusal, known)
        security.warning("%s (tenant %r)", refusal.describe(), tenant)
        # An authenticated caller's refused write is audited by ``record`` already.
        if (known and self.audit is not None and not (principal is not None and method in WRITES)
                and await asyncio.to_thread(self._vouched, refusal, principal)):
            entry = lpb.AuditRecord(
                at_ms=refusal.at_ms, credential_id=credential[:64],
                role=int(principal.role) if principal is not None else 0,  # type: ignore[arg-type]
                peer=context.peer() or "", method=method, status=error.status,
                summary=refusal.describe() + (" " + summarize(request) if request else ""))
            try:
                await self.audit(tenant, entry)
            except TraceError as exc:
                log.info("no audit record of a refusal in %r: %s", tenant, exc)
        for burst in self.refusals.note(refusal):
            security.warning("burst: %s (tenant %r)", burst.describe(), burst.tenant)
            if burst.tenant != OPERATOR and self._exists(burst.tenant):
                await asyncio.to_thread(self._raise, burst)
        return refusal

    def _claimed(self, principal: Principal | None, request: Message | None,
                 context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, str]:
        """(tenant, credential) a call claimed: a token's tenant and id, else the tenant it
        named and the certificate subject it presented. Never a secret."""
        named = getattr(request, "tenant", "") if request is not None else ""
        if principal is not None:
            return principal.tenant or named, principal.credential_id
        try:
            token = _bearer(context.invocation_metadata() or ())
        except Unauthenticated:
            return named, "malformed authorization"
        if token is not None:
            try:
                parsed = parse_token(token)
            except Unauthenticated:
                return named, "malformed token"
            return parsed.tenant, f"token {parsed.credential_id}"
        cn = peer_identity(context.auth_context() or {})
        return named, f"certificate {cn[:200]}" if cn else ""

    def _vouched(self, refusal: Refusal, principal: Principal | None) -> bool:
        """Whether the tenant's own records vouch for the caller's claim, so that the refusal
        belongs in its trail: a valid credential, a revoked or expired one of the tenant, a
        wrong secret for one of its tokens, a certificate our client CA signed. Anyone can
        name a tenant or make up a token: those stay in the security log, or strangers could
        fill a tenant's trail."""
        if principal is not None or refusal.reason in (Reason.REVOKED, Reason.EXPIRED,
                                                       Reason.UNBOUND_CERTIFICATE):
            return True
        if refusal.reason is not Reason.UNKNOWN_TOKEN or refusal.tenant == OPERATOR:
            return False
        credential_id = refusal.credential.removeprefix("token ")
        return any(c.credential.credential_id == credential_id
                   for c in self.data.get(refusal.tenant).access.credentials())

    def _exists(self, tenant: str) -> bool:
        if tenant == OPERATOR:
            return True
        if not tenant:
            return False
        try:
            self.data.get(tenant)
        except TraceError:
            return False
        return True

    def _raise(self, burst: Burst) -> None:
        """The burst as the tenant's ACCESS_REFUSED alert, stored once per window."""
        last = burst.last
        alert = AlertRecord(
            kind=AlertKind.ACCESS_REFUSED, source=AlertSource.ACCESS, code="",
            raised_at_ms=last.at_ms, address=last.address, credential=last.credential[:200],
            refusals=burst.count, detail=burst.describe())
        key = f"R{burst.key}:{last.at_ms // burst.window_ms}".encode()[:400]
        tenant = self.data.get(burst.tenant)
        alerts.book(tenant.path, tenant.name, tenant.ledger.codes).append([Raised(key, alert)])

    def _check_role(self, method: str, principal: Principal) -> None:
        use_case = TABLE.get(method)
        if use_case is None:
            raise PermissionDenied("this method is not in the authorization table")
        if principal.role not in use_case.roles:
            raise PermissionDenied(f"the {principal.role.name.lower()} role may not call "
                                   f"{method.rsplit('/', 1)[1]}")

    def _authenticate(self, method: str, tenant: str, context: grpc.aio.ServicerContext[Any, Any],
                      peer: str) -> Principal:
        token = _bearer(context.invocation_metadata() or ())
        now = now_ms()
        if token is not None:
            parsed = parse_token(token)
            try:
                access = (self.data.operator() if parsed.tenant == OPERATOR
                          else self.data.get(parsed.tenant).access)
            except NotFound:
                raise Unauthenticated("unknown API token") from None
            return access.authenticate_token(parsed, now, peer)
        certificate = peer_certificate(context.auth_context() or {})
        if certificate is not None and tenant:
            try:
                return self.data.get(tenant).access.authenticate_certificate(certificate, now,
                                                                             peer)
            except NotFound:
                raise Unauthenticated("client certificate is not bound to this tenant") from None
        if self.public_verify and method == "/pharmatrace.v1.Verification/Verify":
            return Principal(tenant, Role.PUBLIC, peer=peer)
        raise Unauthenticated("no credential: send 'authorization: Bearer <token>' or a bound "
                              "client certificate")


def summarize(message: Message, limit: int = 500) -> str:
    """What a request asked for, for the audit trail: scalar fields, sizes of lists."""
    parts: list[str] = []
    for field, value in message.ListFields():
        if field.is_repeated:
            parts.append(f"{field.name}=[{len(value)}]")
        elif field.message_type is not None:
            parts.append(f"{field.name}={{{summarize(value, limit)}}}")
        else:
            parts.append(f"{field.name}={str(value)[:64]}")
    return " ".join(parts)[:limit]


def _bind_party(request: Message, party_id: str) -> None:
    """The request's context (and each of its events' contexts) acts for ``party_id``."""
    contexts = [("context", getattr(request, "context", None))]
    contexts += [(f"events[{i}].context", getattr(event, "context", None))
                 for i, event in enumerate(getattr(request, "events", ()))]
    for field, context in contexts:
        if context is None or not hasattr(context, "party_id"):
            continue
        if not context.party_id:
            context.party_id = party_id
        elif context.party_id != party_id:
            raise PermissionDenied(f"this credential acts for party {party_id}",
                                   field=f"{field}.party_id")


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | Mapping[str, str]) -> str | None:
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    for key, value in items:
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            return token.strip()
    return None


def _host(peer: str) -> str:
    """The client's address without its port: 'ipv4:1.2.3.4:5678' -> 'ipv4:1.2.3.4'."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


def error_metadata(exc: TraceError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that goes with an error: when to retry a rate-limited call."""
    if isinstance(exc, RateLimited):
        return (("retry-after-ms", str(exc.retry_after_ms)),)
    return ()
