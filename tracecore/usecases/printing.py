"""Print jobs: a complete pool of codes, or of SSCCs, rendered for a line's printers and sealed
to the line controller's key, so that codes leave the server only encrypted.

Read-only: the verification workers run it, so rendering (CPU work) never holds up the
issuance service's single writer. The job is signed with the tenant's print-signing key,
derived from the key-encryption key: every worker derives the same key and none stores it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tracecore.codes import Scheme
from tracecore.credentials import Principal
from tracecore.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from tracecore.issuance import check_request_id
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.store import POOL_STATE_COMPLETE
from tracecore.ledger.tenants import DataDir, Tenant
from tracecore.printing import labels, seal
from tracecore.printing.job import JobWriter, Kind, TarSink
from tracecore.printing.labels import Label, Symbology
from tracecore.sscc import Range
from tracecore.usecases.declare import ADMIN, LINE, Scope, use_case

#: What the print-signing keys are derived for (``DataDir.derived_key``).
SIGNING_PURPOSE = "print job signing"
DEFAULT_HOST = "https://id.gs1.org"
MAX_PNG_SCALE = 32
MAX_LINE_KEY = 4096
"""Bytes of a line controller's public key file: two PEM public keys take about 230."""
#: Labels rendered per step: the sealed bytes go out between steps.
_BATCH = 4096


@dataclass(frozen=True, slots=True)
class PrintRequest:
    """What to print, how, and for which line controller."""

    request_id: str
    kind: Kind
    line_key: bytes
    """The line controller's public key file (``line keygen``'s NAME.pub), PEM."""
    sscc: bool = False
    symbology: Symbology | None = None
    """Codes of a serial pool only; None: the scheme's own."""
    host: str = DEFAULT_HOST
    png_scale: int = 4


@dataclass(frozen=True, slots=True)
class PrintJob:
    """A sealed job on its way: what it holds, and its bytes as they are rendered."""

    labels: int
    line_key: seal.PublicKeys
    signer: seal.PublicKeys
    """The tenant's print-signing public keys (what ``codes unseal --signer`` checks)."""
    pieces: Iterator[bytes]
    """The sealed job, in consecutive pieces of at most ``seal.CHUNK`` bytes."""


class PrintSigners:
    """Each tenant's print-signing keys, derived once per process (the derivation is scrypt)."""

    def __init__(self, data: DataDir) -> None:
        self._data = data
        self._secret: bytes | None = None
        self._keys: dict[str, seal.KeyPair] = {}

    def keys(self, tenant: str) -> seal.KeyPair:
        found = self._keys.get(tenant)
        if found is None:
            if self._secret is None:
                self._secret = self._data.derived_key(SIGNING_PURPOSE)
            tenant_secret = hmac.digest(self._secret, tenant.encode(), "sha256")
            found = self._keys[tenant] = seal.KeyPair.derive(tenant_secret, tenant)
        return found


@use_case(roles={ADMIN, LINE}, writes=False, scope=Scope.TENANT)
def print_pool(data: DataDir, signers: PrintSigners, caller: Principal | None, tenant: str,
               request: PrintRequest) -> PrintJob:
    """The sealed print job of a complete pool (of codes, or of SSCCs with ``request.sscc``).

    Everything is checked before the first byte: InvalidArgument for a missing or unreadable
    line key or an option out of range, NotFound for a pool never requested, FailedPrecondition
    for a pool still being issued or a symbology its codes cannot take, PermissionDenied for a
    pool another line credential requested (the rule that returns codes: its credential, its
    party or the tenant's admin)."""
    if not request.line_key:
        raise InvalidArgument("codes leave the server only sealed: name the line controller's "
                              "public key (`pharmatrace line keygen`)", field="line_key")
    if len(request.line_key) > MAX_LINE_KEY:
        raise InvalidArgument(f"at most {MAX_LINE_KEY:,} bytes", field="line_key")
    try:
        line_key = seal.PublicKeys.from_pem(request.line_key)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field="line_key") from None
    if not 1 <= request.png_scale <= MAX_PNG_SCALE:
        raise InvalidArgument(f"must be 1 to {MAX_PNG_SCALE}", field="png_scale")
    if not request.host.startswith(("https://", "http://")) or len(request.host) > 200:
        raise InvalidArgument("an http(s) URL of at most 200 characters",
                              field="digital_link_host")
    check_request_id(request.request_id)
    found = data.get(tenant)
    if request.sscc:
        if request.symbology is not None:
            raise InvalidArgument("SSCCs are printed as GS1-128 only", field="symbology")
        count, batches = _sscc_labels(found, request.request_id)
    else:
        count, batches = _code_labels(found, caller, request)
    signer = signers.keys(found.name)
    return PrintJob(count, line_key, signer.public(),
                    _sealed(batches, request, line_key, signer))


def _code_labels(tenant: Tenant, caller: Principal | None, request: PrintRequest
                 ) -> tuple[int, Iterator[Sequence[Label]]]:
    ledger = tenant.ledger
    record = ledger.pool(request.request_id)
    pool = record.pool
    if pool.state != POOL_STATE_COMPLETE:
        raise FailedPrecondition(
            f"pool {pool.request_id} is still open ({pool.issued:,} of {pool.count:,} issued): "
            "complete it with `codes request` under the same request id", field="request_id")
    _check_requester(caller, record.requester, record.requester_party, pool.request_id)
    expiry = None
    if pool.lot:
        expires_on = ledger.batch(pool.product, pool.lot)[1].expires_on
        expiry = expires_on[2:4] + expires_on[5:7] + expires_on[8:10]
    scheme = Scheme(pool.scheme)

    def run(start: int) -> Sequence[Label]:
        serials = ledger.pool_serials(record.pool_ref, start, min(start + _BATCH, pool.count))
        try:
            return labels.for_codes(scheme, pool.product, serials, lot=pool.lot or None,
                                    expiry=expiry, symbology=request.symbology,
                                    host=request.host, start=start)
        except InvalidArgument as exc:
            if exc.field != "symbology":
                raise
            raise FailedPrecondition(exc.message, field="symbology") from None

    # The first run is made now: a symbology the pool's codes cannot take is refused before
    # any byte of the job is sent.
    first = run(0)

    def runs() -> Iterator[Sequence[Label]]:
        yield first
        for start in range(_BATCH, pool.count, _BATCH):
            yield run(start)

    return pool.count, runs()


def _sscc_labels(tenant: Tenant, request_id: str) -> tuple[int, Iterator[Sequence[Label]]]:
    record = SsccPools(tenant.ledger).pool(request_id)
    ssccs = Range(record.company_prefix, record.extension_digit, record.first,
                  record.count).ssccs()

    def runs() -> Iterator[Sequence[Label]]:
        for start in range(0, len(ssccs), _BATCH):
            yield labels.for_ssccs(ssccs[start:start + _BATCH], start=start)

    return len(ssccs), runs()


def _check_requester(caller: Principal | None, credential: str, party: str, pool: str) -> None:
    """A pool's codes are printed by whoever may hand them back: the credential that requested
    it, a credential of its party, or the tenant's admin. Pools from before requesters were
    kept belong to nobody."""
    if caller is None or caller.role is ADMIN or not credential:
        return
    if credential == caller.credential_id or (party and party == caller.party_id):
        return
    raise PermissionDenied(f"pool {pool} was requested by another credential"
                           + (f" (of {party})" if party else "") + ": only it, its party or "
                           "the tenant's admin may print it", field="request_id")


class _Pieces:
    """Where the sealer writes; taken out in pieces of at most ``seal.CHUNK`` bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def take(self, *, final: bool = False) -> Iterator[bytes]:
        while len(self._buffer) >= seal.CHUNK or (final and self._buffer):
            piece = bytes(self._buffer[:seal.CHUNK])
            del self._buffer[:seal.CHUNK]
            yield piece


def _sealed(runs: Iterator[Sequence[Label]], request: PrintRequest, line_key: seal.PublicKeys,
            signer: seal.KeyPair) -> Iterator[bytes]:
    pieces = _Pieces()
    sealer = seal.Sealer(pieces, line_key, signer)  # type: ignore[arg-type]
    tar = TarSink(sealer)  # type: ignore[arg-type]
    writer = JobWriter(request.kind, tar, png_scale=request.png_scale)
    for run in runs:
        writer.add(run)
        yield from pieces.take()
    writer.close()
    tar.close()
    sealer.close()
    yield from pieces.take(final=True)
