"""The verification responder for trading partners (GS1 Lightweight Verification Messaging
1.1): ``GET /verify/gtin/{gtin}/lot/{lot}/ser/{serial}`` and ``GET /checkConnectivity``."""

from __future__ import annotations

import datetime as dt
import functools
from json.encoder import encode_basestring as _string

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from frontdoor.asgi import header, headers_of, query, respond
from frontdoor.http import Frontdoor, nothing_here, problem
from tracecore.clock import now_ms
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument, PermissionDenied, Unauthenticated
from tracecore.usecases import partner_verification as partner

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pharmatrace"'}
PATH_PREFIX = "/verify/gtin/"
_HEADERS = headers_of({"Content-Type": "application/json", "Cache-Control": "no-store"})


async def check_connectivity(request: Request) -> Response:
    """Whether the responder is up and the requester's credential is good."""
    door: Frontdoor = request.app.state.door
    try:
        _requester(door, request.scope)
    except Unauthenticated as exc:
        return problem(401, exc.message, _CHALLENGE)
    return JSONResponse({"status": "OK", "verificationTimestamp": _timestamp(now_ms())})


class Verify:
    """``GET /verify/gtin/{gtin}/lot/{lot}/ser/{serial}``: one LVMS verification answer."""

    def __init__(self, door: Frontdoor) -> None:
        self._door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = self._door
        path: str = scope["path"]
        parts = path[len(PATH_PREFIX):].split("/")
        if len(parts) != 5 or parts[1] != "lot" or parts[3] != "ser" or not all(parts[::2]):
            await nothing_here()(scope, receive, send)
            return
        try:
            caller = _requester(door, scope)
        except Unauthenticated as exc:
            await problem(401, exc.message, _CHALLENGE)(scope, receive, send)
            return
        params = query(scope)
        try:
            asked = partner.request(
                gtin=parts[0], serial=parts[4], lot=parts[2], exp=params.get("exp", ""),
                corr_uuid=params.get("corrUUID", ""), context=params.get("context", ""),
                req_gln=params.get("reqGLN", ""))
        except InvalidArgument as exc:
            await problem(400, str(exc))(scope, receive, send)
            return
        try:
            answer = partner.verify_for_partner(door.reads, door.reads.verify,
                                                door.reads.record, caller, asked,
                                                now_ms=now_ms())
        except PermissionDenied as exc:
            await problem(403, exc.message)(scope, receive, send)
            return
        await respond(send, 200, body(answer), _HEADERS)


def body(answer: partner.PartnerAnswer) -> bytes:
    """The answer as LVMS's JSON: byte for byte what ``json.dumps`` writes of it (compact,
    UTF-8), written straight rather than through an encoder set up for each answer."""
    data = "true" if answer.verified else "false"
    if answer.failure_reason is not None:
        data += f',"verificationFailureReason":{_string(answer.failure_reason.value)}'
    if answer.additional_info is not None:
        data += f',"additionalInfo":{_string(answer.additional_info.value)}'
    return (f'{{"verificationTimestamp":"{_timestamp(answer.at_ms)}",'
            f'"responderGLN":{_string(answer.responder_gln)},'
            f'"corrUUID":{_string(answer.corr_uuid)},"data":{{"verified":{data}}}}}').encode()


def _requester(door: Frontdoor, scope: Scope) -> Principal:
    """The tenant credential of an ``Authorization: Bearer`` header."""
    return door.bearer(header(scope, b"authorization"), scope.get("client"),
                       "an operator token does not verify packs")


def _timestamp(at_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, as LVMS writes times."""
    second, ms = divmod(at_ms, 1000)
    return f"{_second_text(second)}{ms:03d}Z"


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    """A timestamp's text up to its milliseconds: answers come many a second, so each second
    is formatted once."""
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
