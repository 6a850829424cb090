"""The REST binding's work in the issuance process, the ledger's one writer: capture jobs the
front door accepted are applied through the EPCIS import use case, and each webhook
subscription's new events go to its outbox and are POSTed from there, in order, retried with
back-off until the receiver takes them. Both live in the tenant's store, so a restart resumes
them."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.clock import now_ms
from tracecore.credentials import Principal, Role
from tracecore.errors import InvalidArgument, TraceError, Unauthenticated
from tracecore.ledger.epcis_rest import EpcisStore, EpcisStores, has_store
from tracecore.ledger.tenants import TENANTS
from tracecore.usecases import epcis_capture, epcis_feed, lifecycle
from tracecore.usecases.writeside import WriteSide
from tracerpc.tasks import cancel_and_wait

log = logging.getLogger("pharmatrace.epcis")

#: How often the front door's marks are looked for: the wait of a capture job before it starts.
WAKE_INTERVAL_S = 0.02
#: How often each subscription looks for new events.
FEED_INTERVAL_S = 0.2
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 60.0
DELIVERY_TIMEOUT_S = 10.0
#: Capture jobs of one tenant applied together: read side by side, written in one transaction.
RUN = 8
#: Jobs in the first run of a tenant's turn; each next run takes twice as many, up to RUN.
FIRST_RUN = 2
#: Runs' worth of a tenant's documents under way at once: a run being read, those before it
#: being written (a run is done once its audit records, written after the next run, are).
IN_FLIGHT = 3
#: Runs applied in one turn of a tenant, the jobs queued during the turn included, before the
#: other tenants' jobs and the subscriptions are looked at.
TURN_RUNS = 16
#: Header of the HMAC-SHA256 of a delivery's body under the subscription's signatureToken.
SIGNATURE_HEADER = "GS1-Signature"

AuditSink = Callable[[str, lpb.AuditRecord], Awaitable[None]]


def signature(token: str, body: bytes) -> str:
    """The value of ``SIGNATURE_HEADER`` for ``body``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def _timestamp(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") \
        + f"{at_ms % 1000:03d}Z"


def _principal(tenant: str, held: dict[str, str]) -> Principal:
    return Principal(tenant, Role[held["role"]], held["credential"], held["party"])


@dataclass
class _Retry:
    attempts: int = 0
    at: float = 0.0


@dataclass
class EpcisRunner:
    """Applies capture jobs and delivers subscriptions, for every tenant of the data
    directory."""

    side: WriteSide
    audit: AuditSink | None = None
    stores: EpcisStores = field(init=False)
    _subscribed: set[str] = field(default_factory=set)
    _retries: dict[str, _Retry] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self.stores = EpcisStores(self.side.data.root, self.side.data.code_keys)
        self.side.data.add_close_listener(lambda tenant, _: self.stores.forget(tenant))

    async def start(self) -> None:
        """Resumes what a stop left (queued jobs, pending deliveries) and runs until ``stop``."""
        self._client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S, follow_redirects=False)
        waiting = await asyncio.to_thread(self._tenants_with_stores)
        self._task = asyncio.create_task(self._run(waiting))

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._client is not None:
            await self._client.aclose()
        self.stores.close()

    def _tenants_with_stores(self) -> list[str]:
        data = self.side.data
        return [name for name in data.names() if has_store(data.root / TENANTS / name)]

    def _store(self, tenant: str) -> EpcisStore:
        found = self.side.data.get(tenant)
        return self.stores.get(found.name, found.path)

    async def _run(self, waiting: list[str]) -> None:
        while True:
            try:
                await self._serve(waiting)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A fault in one look must not end every tenant's jobs and deliveries.
                log.exception("EPCIS capture jobs and deliveries")
                waiting = []
                await asyncio.sleep(1.0)

    async def _serve(self, waiting: list[str]) -> None:
        fed = 0.0
        while True:
            woken = set(waiting) | set(await asyncio.to_thread(self.stores.woken))
            waiting = []
            for tenant in sorted(woken):
                try:
                    if await self._jobs(tenant):
                        waiting.append(tenant)  # its turn ended with jobs left: next turn
                    store = self._store(tenant)
                    if await asyncio.to_thread(store.subscriptions):
                        self._subscribed.add(tenant)
                except TraceError as exc:
                    log.warning("EPCIS jobs of %r: %s", tenant, exc)
            if time.monotonic() - fed >= FEED_INTERVAL_S or woken & self._subscribed:
                fed = time.monotonic()
                for tenant in sorted(self._subscribed):
                    try:
                        await self._feed(tenant)
                    except TraceError as exc:
                        log.warning("EPCIS subscriptions of %r: %s", tenant, exc)
            await asyncio.sleep(WAKE_INTERVAL_S)

    # -- capture jobs ------------------------------------------------------------------------

    async def _jobs(self, tenant: str) -> bool:
        """Applies the tenant's queued jobs in the order they came, RUN at a time, each run
        read side by side and written in one transaction. A run is started as soon as the one
        before it is read, so the readers and the writer are both kept at work: one run is read
        while those before it are written. Jobs queued meanwhile join the turn, up to
        TURN_RUNS runs, so that a run of POSTs is applied as it arrives rather than after the
        runs taken before it are written. They stay in order because the import use case reads
        a tenant's runs one at a time, in the order asked (a fair lock), and gives each run to
        the writer before the next read ends. True when the turn ended with jobs left."""
        store = self._store(tenant)
        taken: set[str] = set()
        started: collections.deque[tuple[asyncio.Task[None], int]] = collections.deque()
        runs = 0
        try:
            while runs < TURN_RUNS:
                # The first runs of a turn are small, so that writing starts soon after the
                # first documents are read rather than after a whole run is.
                size = min(RUN, FIRST_RUN << runs)
                # The oldest queued are those taken and not yet finished, then the new ones.
                queued = [capture_id for capture_id in
                          await asyncio.to_thread(store.queued, len(taken) + size)
                          if capture_id not in taken][:size]
                if not queued:
                    if not started:
                        break
                    # Nothing new yet: look again soon, or once the oldest run under way is done.
                    await asyncio.wait({started[0][0]}, timeout=WAKE_INTERVAL_S)
                    while started and started[0][0].done():
                        await started.popleft()[0]
                    continue
                taken.update(queued)
                loaded = await asyncio.to_thread(_loaded, store, queued)
                if not loaded:
                    continue
                runs += 1
                after = started[-1][0] if started else None
                started.append((asyncio.create_task(self._apply(tenant, store, loaded, after)),
                                len(loaded)))
                while sum(n for _, n in started) >= IN_FLIGHT * RUN:
                    await started.popleft()[0]
        finally:
            # Every run started ends before the turn does, even when one of them failed.
            ended = await asyncio.gather(*(task for task, _ in started), return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome
        return runs == TURN_RUNS

    async def _apply(self, tenant: str, store: EpcisStore,
                     run: list[tuple[dict[str, Any], str]],
                     after: asyncio.Task[None] | None) -> None:
        """Applies one run; its jobs are finished and audited after those of the run before it
        (``after``), so that jobs end, and their audit records follow, in the order they
        came, even when this run was quicker (its sender's credential was revoked)."""
        captures = [epcis_capture.Capture(_principal(tenant, job["caller"]), document,
                                      job["captureErrorBehaviour"] == "proceed")
                    for job, document in run]
        answers: list[lifecycle.Outcome | TraceError]
        try:
            answers = await epcis_capture.apply_captures(self.side, tenant, captures)
        except TraceError as exc:
            answers = [exc] * len(run)
        if after is not None:
            await asyncio.wait({after})  # its failure is its own turn's to raise
        finished = now_ms()
        records: list[lpb.AuditRecord] = []
        for (job, document), capture, answer in zip(run, captures, answers, strict=True):
            errors, status = _errors(answer, f"/epcis/capture/{job['captureID']}")
            job.update(running=False, success=not errors, errors=errors,
                       finishedAt=_timestamp(finished))
            records.append(lpb.AuditRecord(
                at_ms=finished, credential_id=capture.caller.credential_id,
                role=int(capture.caller.role), method="POST /epcis/capture",  # type: ignore[arg-type]
                summary=f"captureID={job['captureID']} behaviour={job['captureErrorBehaviour']} "
                        f"bytes={len(document)} errors={len(errors)}",
                status=status))
        await asyncio.to_thread(store.finish_jobs, [job for job, _ in run])
        if self.audit is not None:
            # Submitted together, the run's audit records share one transaction (one fsync),
            # in order, instead of one each.
            audit = self.audit
            await asyncio.gather(*(audit(tenant, record) for record in records))

    # -- subscriptions -----------------------------------------------------------------------

    async def _feed(self, tenant: str) -> None:
        store = self._store(tenant)
        subs = await asyncio.to_thread(store.subscriptions)
        if not subs:
            self._subscribed.discard(tenant)
            return
        ledger = self.side.data.get(tenant).ledger
        for sub in subs:
            query = await asyncio.to_thread(store.query, sub["queryName"])
            if query is None:
                continue
            caller = _principal(tenant, sub["caller"])
            fresh = await asyncio.to_thread(epcis_feed.events_since, ledger, caller,
                                            query["query"], int(sub["cursor"]),
                                            sub.get("initialRecordTime", ""))
            if fresh.cursor != sub["cursor"] or fresh.events:
                bodies = [self._body(sub, fresh)] if fresh.events else []
                await asyncio.to_thread(store.enqueue, sub["subscriptionID"], fresh.cursor,
                                        bodies)
            await self._deliver(store, sub)

    @staticmethod
    def _body(sub: dict[str, Any], fresh: epcis_feed.Fresh) -> bytes:
        from frontdoor.epcis_rest import query_document

        document = query_document(fresh.context, fresh.events, sub["queryName"],
                                  sub["subscriptionID"])
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    async def _deliver(self, store: EpcisStore, sub: dict[str, Any]) -> None:
        """POSTs the subscription's pending deliveries, oldest first; the first one refused
        waits for its retry, and the later ones behind it (in order per subscription)."""
        assert self._client is not None
        sub_id = sub["subscriptionID"]
        retry = self._retries.get(sub_id)
        if retry is not None and time.monotonic() < retry.at:
            return
        while (pending := await asyncio.to_thread(store.next_delivery, sub_id)) is not None:
            number, body = pending
            headers = {"Content-Type": "application/ld+json", "GS1-EPCIS-Version": "2.0.0",
                       "GS1-Subscription-ID": sub_id}
            if sub.get("signatureToken"):
                headers[SIGNATURE_HEADER] = signature(sub["signatureToken"], body)
            try:
                answer = await self._client.post(sub["dest"], content=body, headers=headers)
                taken = 200 <= answer.status_code < 300
            except httpx.HTTPError as exc:
                log.info("webhook of subscription %s: %s", sub_id, exc)
                taken = False
            if not taken:
                retry = self._retries.setdefault(sub_id, _Retry())
                retry.attempts += 1
                retry.at = time.monotonic() + min(MAX_RETRY_S,
                                                  FIRST_RETRY_S * 2 ** (retry.attempts - 1))
                return
            self._retries.pop(sub_id, None)
            await asyncio.to_thread(store.delivered, sub_id, number)


def _loaded(store: EpcisStore, capture_ids: list[str]) -> list[tuple[dict[str, Any], str]]:
    """The queued jobs of ``capture_ids`` with their documents (those not finished since)."""
    return [job for job in map(store.load, capture_ids) if job is not None]


def _errors(answer: lifecycle.Outcome | TraceError, instance: str
            ) -> tuple[list[dict[str, Any]], str]:
    """A job's errors in the standard's problem form, and the status its audit record keeps."""
    if isinstance(answer, TraceError):
        return [_problem(answer, instance)], answer.status
    errors: list[dict[str, Any]] = []
    for failure in answer.failures:
        where = failure.field or f"$.epcisBody.eventList[{failure.event}]"
        errors.append({
            "type": "epcisException:ValidationException", "title": "Event refused",
            "status": 400, "detail": failure.reason, "instance": instance,
            "eventIndex": failure.event, "field": where,
            **({"epc": failure.code} if failure.code else {})})
    return errors, "OK" if answer.applied else "FAILED_PRECONDITION"


def _problem(exc: TraceError, instance: str) -> dict[str, Any]:
    if isinstance(exc, Unauthenticated):
        return {"type": "epcisException:SecurityException", "title": "Capture refused",
                "status": 401, "detail": str(exc), "instance": instance}
    invalid = isinstance(exc, InvalidArgument)
    return {"type": "epcisException:ValidationException" if invalid
            else "epcisException:ImplementationException",
            "title": "Document refused" if invalid else "Capture failed",
            "status": 400 if invalid else 500, "detail": str(exc), "instance": instance}
