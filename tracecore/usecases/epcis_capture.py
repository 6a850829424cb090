"""The EPCIS REST binding's capture jobs applied: the documents a tenant's callers queued
(``POST /epcis/capture``), each what ``lifecycle.import_epcis`` makes of it, taken in runs that
are read side by side and written in one transaction, and held to their senders' credentials
as they stand when the run is applied."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from tracecore.credentials import Principal
from tracecore.errors import TraceError, Unauthenticated
from tracecore.ledger.exchange import Imported
from tracecore.usecases.declare import ADMIN, DISTRIBUTOR, LINE, Scope, use_case
from tracecore.usecases.importer import Sent
from tracecore.usecases.lifecycle import Outcome, apply_imported
from tracecore.usecases.writeside import WriteSide, sender


@dataclass(frozen=True, slots=True)
class Capture:
    """One queued EPCIS document: who sent it, and whether its good events are applied when
    others are refused (the REST binding's ``GS1-Capture-Error-Behaviour: proceed``)."""

    caller: Principal
    document: str
    best_effort: bool


@use_case(roles={ADMIN, LINE, DISTRIBUTOR}, writes=True, scope=Scope.TENANT)
async def apply_captures(side: WriteSide, tenant: str, captures: Sequence[Capture]
                         ) -> list[Outcome | TraceError]:
    """Queued EPCIS documents of one tenant, in order, each answered on its own: its outcome,
    or the error that refused it. A document whose sender's credential was revoked (or
    expired) after it was queued is not applied: its answer is Unauthenticated. The others
    are read side by side, then applied in one transaction (one fsync for the run, as a gRPC
    CaptureEvents stream is)."""
    found = side.data.get(tenant)
    now = side.clock()
    answers: list[Outcome | TraceError] = []
    allowed: list[int] = []
    for i, capture in enumerate(captures):
        try:
            found.access.current(capture.caller.credential_id, now)
        except Unauthenticated as exc:
            answers.append(Unauthenticated(
                f"{exc.message} after this document was accepted: none of it was applied"))
        else:
            allowed.append(i)
            answers.append(Outcome(applied=False))
    read = await side.importer.read_many(found, [
        Sent(captures[i].document, captures[i].caller.party_id, sender(captures[i].caller))
        for i in allowed])

    async def apply(i: int, imported: Imported | TraceError) -> None:
        if isinstance(imported, TraceError):
            answers[i] = imported
            return
        try:
            answers[i] = await apply_imported(side, found, captures[i].caller, imported,
                                              captures[i].best_effort)
        except TraceError as exc:
            answers[i] = exc

    # Each request reaches the group committer, in order, before the first is applied: the
    # run is one transaction.
    await asyncio.gather(*(apply(i, r) for i, r in zip(allowed, read, strict=True)))
    return answers
