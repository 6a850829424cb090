"""What the front door reads, in one verification worker: products across tenants, parties'
GLNs, verification through the worker's verifiers, and the answer trail it appends to."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

from pharmatrace.v1 import common_pb2 as pb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.errors import NotFound, TraceError
from tracecore.ledger.answer_trail import DIRECTORY, AnswerTrail
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.tenants import TENANTS, DataDir
from tracecore.usecases.verification import public_client
from tracecore.verification import Answers, ScanContext
from verify_svc.verification import Verifiers

#: How long the tenants that registered a product, and the list of tenants, are trusted: a
#: product registered by one more tenant is found within this long.
_TTL_S = 2.0
#: How long a product's record (and so its links), or a party's GLN, is reused before it is
#: read again.
_PRODUCT_TTL_S = 1.0
_PARTIES_PAGE = 1000
_MAX_PRODUCTS = 100_000


class FrontdoorReads:
    """The catalogue, partner directory, verifier and answer trail of one worker."""

    def __init__(self, data: DataDir, verifiers: Verifiers) -> None:
        self._data = data
        self._verifiers = verifiers
        self._owners: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._tenants: tuple[float, int, list[str]] = (0.0, 0, [])
        self._products: dict[tuple[str, str], tuple[float, pb.Product]] = {}
        self._responders: dict[str, str] = {}
        self._glns: dict[tuple[str, str], tuple[float, str]] = {}
        self._trails: dict[str, AnswerTrail] = {}
        self._lock = threading.Lock()

    # -- catalogue ---------------------------------------------------------------------------

    def owners(self, product_id: str) -> Sequence[str]:
        now = time.monotonic()
        known = self._owners.get(product_id)
        if known is not None and now - known[0] < _TTL_S:
            return known[1]
        found = []
        for name in self._tenant_names():
            try:
                self._data.get(name).ledger.product(product_id)
            except TraceError:  # not registered there, or the tenant is offline
                continue
            found.append(name)
        if not found:
            # Who has a product is worth remembering; who has not is not (it is registered
            # before its first pack is printed), and would let a flood of made-up GTINs fill
            # memory.
            return ()
        owners = tuple(found)
        if known is not None and known[1] == owners:
            owners = known[1]  # the same object while unchanged: answers made from it hold
        elif len(self._owners) >= _MAX_PRODUCTS:
            self._owners.clear()
        self._owners[product_id] = (now, owners)
        return owners

    def sscc_owners(self, code: str) -> Sequence[str]:
        """The tenants that allocated an SSCC: a few reads per tenant, nothing remembered, so
        made-up SSCCs cost no memory."""
        found = []
        for name in self._tenant_names():
            try:
                if SsccPools(self._data.get(name).ledger).allocated_under(code) is not None:
                    found.append(name)
            except TraceError:  # the tenant is offline
                continue
        return found

    def product(self, tenant: str, product_id: str) -> pb.Product:
        """A tenant's record of a product, read again after ``_PRODUCT_TTL_S``; the very same
        object as long as the record did not change (as ``owners`` returns the same tuple), so
        that what was made from it can tell it still holds by identity."""
        now = time.monotonic()
        known = self._products.get((tenant, product_id))
        if known is not None and now - known[0] < _PRODUCT_TTL_S:
            return known[1]
        product = self._data.get(tenant).ledger.product(product_id)[1]
        if known is not None and known[1] == product:
            product = known[1]  # the same object while unchanged: answers made from it hold
        elif len(self._products) >= _MAX_PRODUCTS:
            self._products.clear()
        self._products[(tenant, product_id)] = (now, product)
        return product

    def verify(self, tenant: str, text: str, context: ScanContext, now_ms: int,
               client: str | None = None) -> Answers:
        """One code verified in a tenant, its scan counted: every verification of the front
        door goes through here. ``client``: a public scan's client address, so that it counts
        once per client per code per day (its tag: ``public_client``); None for an
        authenticated partner."""
        verifier = self._verifiers.get(tenant)
        if client is None:
            return verifier.verify_one(text, context, now_ms)
        return verifier.verify_one(text, context, now_ms,
                                   client=public_client(self._verifiers, tenant, client, now_ms))

    # -- partner directory -------------------------------------------------------------------

    def party_gln(self, tenant: str, party_id: str) -> str:
        """The party's GLN ("" if none), asked on every LVMS request: reused for as long as a
        product's record is."""
        now = time.monotonic()
        known = self._glns.get((tenant, party_id))
        if known is not None and now - known[0] < _PRODUCT_TTL_S:
            return known[1]
        try:
            gln = self._data.get(tenant).ledger.party(party_id)[1].gln
        except NotFound:
            return ""
        if len(self._glns) >= _MAX_PRODUCTS:
            self._glns.clear()
        self._glns[(tenant, party_id)] = (now, gln)
        return gln

    def responder_gln(self, tenant: str) -> str:
        known = self._responders.get(tenant)
        if known is not None:
            return known
        ledger = self._data.get(tenant).ledger
        token, gln = "", ""
        while not gln:
            parties, token = ledger.parties(_PARTIES_PAGE, token)
            gln = next((p.gln for p in parties if p.kind == pb.PARTY_KIND_PLANT and p.gln), "")
            if not token:
                break
        if gln:
            self._responders[tenant] = gln
        return gln

    # -- answer trail ------------------------------------------------------------------------

    def record(self, tenant: str, entry: lpb.AuditRecord) -> None:
        self._trail(tenant).buffer(entry)

    def flush(self) -> int:
        """Appends every tenant's buffered answer records; returns how many."""
        return sum(trail.flush() for trail in list(self._trails.values()))

    def close(self) -> None:
        """Writes every tenant's buffered answer records and closes the trails (each of
        them, whichever fails)."""
        with contextlib.ExitStack() as trails:
            for trail in list(self._trails.values()):
                trails.callback(trail.close)

    def forget(self, tenant: str) -> None:
        """The tenant went offline: its buffered answer records are written and its trail
        closed (the next answer opens it again). An answer whose record comes to the closed
        trail, in another thread, is refused rather than given unrecorded."""
        with self._lock:
            trail = self._trails.pop(tenant, None)
        if trail is not None:
            trail.close()

    def _trail(self, tenant: str) -> AnswerTrail:
        trail = self._trails.get(tenant)
        if trail is None:
            with self._lock:
                trail = self._trails.get(tenant)
                if trail is None:
                    path = self._data.get(tenant).path / DIRECTORY
                    trail = self._trails[tenant] = AnswerTrail(
                        path, tenant=tenant, codes=self._data.code_keys(tenant))
        return trail

    def _tenant_names(self) -> list[str]:
        """The tenants, listed again when one was added (the directory changed) or after a
        while (one's files were completed)."""
        stamp, changed, names = self._tenants
        now = time.monotonic()
        try:
            current = (self._data.root / TENANTS).stat().st_mtime_ns
        except OSError:
            current = 0
        if current != changed or now - stamp > _TTL_S:
            names = self._data.names()
            self._tenants = (now, current, names)
        return names
