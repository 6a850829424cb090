"""Verify: is this pack genuine, what is its status, what should the scanner know? One code
(anyone, the public included) or a batch of them (the tenant's own readers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tracecore import regions
from tracecore.credentials import Principal, Role
from tracecore.errors import InvalidArgument, NotFound
from tracecore.scan_clients import client_tag, peer_host
from tracecore.status import Status
from tracecore.usecases.declare import (
    ADMIN,
    DISTRIBUTOR,
    LINE,
    PHARMACY,
    PUBLIC,
    READERS,
    REGULATOR,
    Scope,
    use_case,
)
from tracecore.verification import Answers, ScanContext, Verifier, not_minted

MAX_BATCH = 100_000
MAX_CODE_BYTES = 4096
MAX_PARTY_ID = 64


class Verifiers(Protocol):
    """The verifier of each tenant (with its scan statistics buffered per process)."""

    def get(self, tenant_name: str) -> Verifier: ...

    def client_key(self) -> bytes:
        """The secret public scan clients are hashed under (``tracecore.scan_clients``)."""
        ...


@dataclass(frozen=True, slots=True)
class Scan:
    """Where and why codes were scanned, as the scanner states it; all optional."""

    party_id: str = ""
    region: str = ""
    """GB/T 2260 six-digit code."""
    purpose: int = 0
    """``pharmatrace.v1.ScanPurpose`` number."""


@dataclass(frozen=True, slots=True)
class Verified:
    """The answer to one code."""

    answers: Answers
    replaced_by: str = ""
    """For a voided code whose damaged label was replaced: the code that replaced it."""


_UNSTATED = ScanContext()


def scan_context(scan: Scan, caller: Principal | None = None) -> ScanContext:
    """The checked scan context; INVALID_ARGUMENT naming a bad field. An anonymous (public)
    caller may name any party or place: trusted, it would plant diversion alerts against a
    real party, so only its purpose is kept."""
    if not (scan.party_id or scan.region or scan.purpose):
        return _UNSTATED  # most scans, a consumer's all
    if len(scan.party_id) > MAX_PARTY_ID:
        raise InvalidArgument(f"at most {MAX_PARTY_ID} characters", field="context.party_id")
    region = regions.parse_region(scan.region, field="context.region") if scan.region else ""
    if caller is not None and caller.role is Role.PUBLIC:
        return ScanContext(purpose=scan.purpose)
    return ScanContext(scan.party_id, int(region) if region else 0, scan.purpose)


@use_case(roles={ADMIN, LINE, DISTRIBUTOR, PHARMACY, REGULATOR, PUBLIC}, writes=False,
          scope=Scope.TENANT)
def verify(verifiers: Verifiers, tenant: str, code: str, scan: Scan, now_ms: int,
           caller: Principal | None = None) -> Verified:
    """One code, in any input form: its answer is the single entry of the ``Answers``, and a
    voided code whose damaged label was replaced names the code that replaced it. A public
    caller's scan counts once per client (its address) per code per day."""
    if len(code) > MAX_CODE_BYTES:
        raise InvalidArgument(f"at most {MAX_CODE_BYTES} characters", field="code")
    context = scan_context(scan, caller)
    try:
        verifier = verifiers.get(tenant)
    except NotFound:
        if caller is not None and caller.role is not Role.PUBLIC:
            raise
        # A stranger learns nothing from a tenant's name: no such tenant answers like a tenant
        # that never minted the code.
        return Verified(not_minted([code]))
    client = b""
    if caller is not None and caller.role is Role.PUBLIC:
        client = public_client(verifiers, tenant, peer_host(caller.peer), now_ms)
    answers = verifier.verify_one(code, context, now_ms, client=client)
    replaced_by = (verifier.replaced_by(answers.codes[0])
                   if answers.statuses[0] == Status.VOIDED else "")
    return Verified(answers, replaced_by)


def public_client(verifiers: Verifiers, tenant: str, client: str, now_ms: int) -> bytes:
    """The tag a public scan by ``client`` (an address without its port, or a certificate's
    identity) is counted under in ``tenant`` that day: the same client scanning a code again
    that day is not another consumer, so it counts once."""
    return client_tag(verifiers.client_key(), tenant, client, now_ms)


@use_case(roles=READERS, writes=False, scope=Scope.TENANT)
def verify_batch(verifiers: Verifiers, tenant: str, codes: Sequence[str | bytes], scan: Scan,
                 now_ms: int) -> Answers:
    """Up to ``MAX_BATCH`` codes scanned together; columnar answers in their order."""
    if len(codes) > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH:,} codes", field="codes")
    context = scan_context(scan)
    return verifiers.get(tenant).verify(codes, context, now_ms)
