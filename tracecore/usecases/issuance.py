"""Issuing codes: a packaging line's pool (minted, durable, resumable by request id), codes
handed back unused or scrapped, and a pool's state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import issuance
from tracecore.codes import Code, parse_many
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument, ParseError
from tracecore.events import Event, EventKind
from tracecore.ledger import lifecycle
from tracecore.usecases.declare import ADMIN, LINE, REGULATOR, Scope, use_case
from tracecore.usecases.writeside import WriteSide, sender, who

#: Codes one ReturnCodes may hand back.
MAX_RETURN = 100_000
#: Why codes come back: never printed on a pack, or printed and scrapped on the line.
RETURN_REASONS = ("unused", "scrapped")

Chunk = issuance.Chunk


@dataclass(frozen=True, slots=True)
class CodeFailure:
    """A returned code left as it was: its place in the request, its text, and why."""

    index: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Returned:
    voided: int
    failures: list[CodeFailure]


@use_case(roles={ADMIN, LINE}, writes=True, scope=Scope.TENANT)
async def request_codes(side: WriteSide, caller: Principal, tenant: str, request_id: str,
                        product: str, lot: str, level: int, count: int, chunk_size: int
                        ) -> AsyncGenerator[Chunk, None]:
    """A pool's codes, chunk by chunk, each durable before it is yielded; a retry under the same
    request id replays what was issued and continues. Level 0 (not given) is the unit."""
    found = side.data.get(tenant)
    request = issuance.pool_request(request_id, product, lot, level or cpb.PACKAGING_LEVEL_UNIT,
                                    count, requester=caller.credential_id,
                                    requester_party=caller.party_id)
    chunks = issuance.issue(found, request, issuance.chunk_size(chunk_size), side.clock)
    run = side.writer.run
    # The next chunk is minted and committed while the current one is on its way.
    pending = asyncio.ensure_future(run(found.name, next, chunks, None))
    try:
        while (chunk := await pending) is not None:
            pending = asyncio.ensure_future(run(found.name, next, chunks, None))
            yield chunk
    finally:
        # The prefetched chunk is durable but nobody will receive it: a retry replays it, and
        # meets its error too, so neither may mask why this stream ended.
        with contextlib.suppress(Exception):
            await asyncio.shield(pending)
        await run(found.name, chunks.close)


@use_case(roles={ADMIN, LINE}, writes=True, scope=Scope.TENANT)
async def return_codes(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
                       reason: str) -> Returned:
    """Codes handed back unused or scrapped are voided; each code that cannot be is reported
    with its place in the request."""
    if not codes:
        raise InvalidArgument("at least one code is required", field="codes")
    if len(codes) > MAX_RETURN:
        raise InvalidArgument(f"at most {MAX_RETURN:,} codes", field="codes")
    if reason not in RETURN_REASONS:
        raise InvalidArgument("must be UNUSED or SCRAPPED", field="reason")
    found = side.data.get(tenant)
    texts = list(codes)
    failures: list[CodeFailure] = []
    parsed: list[Code] = []
    positions: list[int] = []
    for i, scan in enumerate(parse_many(texts)):
        if isinstance(scan, ParseError):
            failures.append(CodeFailure(i, texts[i][:200], scan.reason))
        else:
            parsed.append(scan.code)
            positions.append(i)
    event = Event(EventKind.VOID, tuple(parsed), side.clock(), reason=reason,
                  custodian=caller.party_id, credential=sender(caller))
    result = await side.committer.submit(
        found.name,
        lifecycle.Request([event] if parsed else [], best_effort=True, who=who(caller)))
    if result.error is not None:
        raise result.error
    for failure in result.failures:
        i = positions[failure.position]
        failures.append(CodeFailure(i, texts[i][:200], failure.reason))
    failures.sort(key=lambda f: f.index)
    return Returned(len(parsed) - len(result.failures), failures)


@use_case(roles={ADMIN, LINE, REGULATOR}, writes=False, scope=Scope.TENANT)
def get_pool(side: WriteSide, caller: Principal, tenant: str, request_id: str
             ) -> lpb.PoolRecord:
    """A pool's record: what was asked for, how many codes are issued and returned."""
    issuance.check_request_id(request_id)
    return side.data.get(tenant).ledger.pool(request_id)
