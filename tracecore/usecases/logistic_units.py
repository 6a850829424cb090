"""Logistic units: the tenant's GS1 company prefixes and its SSCC pools for cases and pallets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tracecore import gs1, sscc
from tracecore.errors import FailedPrecondition, InvalidArgument, NotFound, ParseError
from tracecore.issuance import check_request_id
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.tenants import Tenant
from tracecore.usecases.declare import ADMIN, LINE, PUBLIC, READERS, REGULATOR, Scope, use_case
from tracecore.usecases.resolver import (
    DEFAULT_LINK,
    LINKSET_TYPES,
    VERIFICATION_SERVICE,
    Link,
    Resolution,
    compact_link_type,
)

MAX_SSCCS = 100_000
"""SSCCs in one pool: a day of pallets and cases of a busy line, in one answer."""


@dataclass(frozen=True, slots=True)
class CompanyPrefix:
    company_prefix: str
    registered_at_ms: int


@dataclass(frozen=True, slots=True)
class SsccPool:
    """An allocated pool: its request, and its SSCCs in allocation order."""

    request_id: str
    company_prefix: str
    extension_digit: int
    created_at_ms: int
    ssccs: list[str]


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
def register_company_prefix(tenant: Tenant, company_prefix: str, now_ms: int) -> CompanyPrefix:
    """Registers a GS1 company prefix the tenant mints SSCCs under."""
    record = SsccPools(tenant.ledger).register_prefix(sscc.company_prefix(company_prefix), now_ms)
    return CompanyPrefix(record.company_prefix, record.registered_at_ms)


@use_case(roles={ADMIN, LINE, REGULATOR}, writes=False, scope=Scope.TENANT)
def list_company_prefixes(tenant: Tenant) -> list[CompanyPrefix]:
    """The tenant's company prefixes."""
    return [CompanyPrefix(r.company_prefix, r.registered_at_ms)
            for r in SsccPools(tenant.ledger).prefixes()]


@use_case(roles={ADMIN, LINE}, writes=True, scope=Scope.TENANT)
def request_ssccs(tenant: Tenant, request_id: str, company_prefix: str, extension_digit: int,
                  count: int, now_ms: int) -> SsccPool:
    """A pool of ``count`` SSCCs, durable before it is returned; the same pool again for a
    retry under the same request id."""
    check_request_id(request_id)
    sscc.extension_digit(extension_digit)
    if not 1 <= count <= MAX_SSCCS:
        raise InvalidArgument(f"must be 1 to {MAX_SSCCS:,}", field="count")
    pools = SsccPools(tenant.ledger)
    if company_prefix:
        sscc.company_prefix(company_prefix)
    else:
        registered = pools.prefixes()
        if len(registered) != 1:
            raise FailedPrecondition(
                f"the tenant has {len(registered)} company prefixes: name one",
                field="company_prefix")
        company_prefix = registered[0].company_prefix
    record = pools.allocate(request_id, company_prefix, extension_digit, count, now_ms)
    return _pool(record.request_id, record.company_prefix, record.extension_digit,
                 record.first, record.count, record.created_at_ms)


@use_case(roles={ADMIN, LINE, REGULATOR}, writes=False, scope=Scope.TENANT)
def get_sscc_pool(tenant: Tenant, request_id: str) -> SsccPool:
    """An SSCC pool already allocated, with its SSCCs."""
    record = SsccPools(tenant.ledger).pool(check_request_id(request_id))
    return _pool(record.request_id, record.company_prefix, record.extension_digit,
                 record.first, record.count, record.created_at_ms)


@dataclass(frozen=True, slots=True)
class SsccState:
    """What the tenant's ledger says of one SSCC."""

    sscc: str
    allocated: bool
    """Whether it was allocated from one of the tenant's SSCC pools: an SSCC carries no tag,
    so this is its authenticity."""
    company_prefix: str
    """The registered prefix it was allocated under; empty when it was not."""


@use_case(roles={ADMIN, LINE, REGULATOR}, writes=False, scope=Scope.TENANT)
def sscc_state(tenant: Tenant, text: str) -> SsccState:
    """An SSCC written in any form (18 digits, ``(00)``, element string, Digital Link ``/00/``,
    ``urn:epc:id:sscc:``): whether the tenant allocated it, and under which prefix. One never
    allocated answers as a never-issued code does: not allocated, nothing more."""
    try:
        code = sscc.parse(text)
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field="sscc") from None
    prefix = SsccPools(tenant.ledger).allocated_under(code)
    return SsccState(code, prefix is not None, prefix or "")


class SsccDirectory(Protocol):
    """The tenants a resolver serves, asked which of them allocated an SSCC."""

    def sscc_owners(self, code: str) -> Sequence[str]:
        """The tenants that allocated the SSCC (18 digits) from one of their pools."""


_LOGISTIC_UNIT = "Logistic unit (SSCC) 物流单元"
_CHECK_TITLE = "Check this logistic unit 查验物流单元"


@use_case(roles={PUBLIC, *READERS}, writes=False, scope=Scope.TENANT)
def resolve_sscc(directory: SsccDirectory, *, root: str, path: str, query: str,
                 link_type: str, wants_linkset: bool) -> Resolution:
    """A GS1 Digital Link ``/00/{sscc}``: the check page of the logistic unit, as its
    ``gs1:defaultLink`` and ``gs1:verificationService``, or both as a linkset.

    InvalidArgument for a path that is not ``/00/`` and a valid SSCC; NotFound for one no
    tenant allocated, or a link type a logistic unit does not offer.
    """
    try:
        code = sscc.parse(f"{root}{path}" + (f"?{query}" if query else ""))
    except ParseError as exc:
        raise InvalidArgument(exc.reason, field="uri") from None
    if not directory.sscc_owners(code):
        raise NotFound(f"SSCC {code} is not known to this resolver", field="sscc")
    anchor = sscc.render_digital_link(code, root)
    check = f"{root}/check?code={gs1.percent_encoded(anchor)}"
    links = (Link(DEFAULT_LINK, check, title=_CHECK_TITLE),
             Link(VERIFICATION_SERVICE, check, title=_CHECK_TITLE))
    wanted = compact_link_type(link_type) if link_type else DEFAULT_LINK
    if wanted in LINKSET_TYPES or (wants_linkset and not link_type):
        return Resolution(anchor, _LOGISTIC_UNIT, links, None)
    chosen = [link for link in links if link.link_type == wanted]
    if not chosen:
        raise NotFound(f"a logistic unit has no {wanted} link", field="linkType")
    return Resolution(anchor, _LOGISTIC_UNIT, links, chosen[0])


def _pool(request_id: str, prefix: str, extension: int, first: int, count: int,
          created_at_ms: int) -> SsccPool:
    ssccs = sscc.Range(prefix, extension, first, count).ssccs()
    return SsccPool(request_id, prefix, extension, created_at_ms, ssccs)
