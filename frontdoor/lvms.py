"""The verification responder for trading partners (GS1 Lightweight Verification Messaging
1.1): ``GET /verify/gtin/{gtin}/lot/{lot}/ser/{serial}`` and ``GET /checkConnectivity``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from frontdoor.http import Frontdoor, problem
from tracecore.clock import now_ms
from tracecore.credentials import OPERATOR, Principal, parse_token
from tracecore.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from tracecore.usecases import partner_verification as partner

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pharmatrace"'}


async def check_connectivity(request: Request) -> Response:
    """Whether the responder is up and the requester's credential is good."""
    door: Frontdoor = request.app.state.door
    try:
        _requester(door, request)
    except Unauthenticated as exc:
        return problem(401, exc.message, _CHALLENGE)
    return JSONResponse({"status": "OK", "verificationTimestamp": _timestamp(now_ms())})


async def verify(request: Request) -> Response:
    """One LVMS verification answer."""
    door: Frontdoor = request.app.state.door
    try:
        caller = _requester(door, request)
    except Unauthenticated as exc:
        return problem(401, exc.message, _CHALLENGE)
    params = request.query_params
    path = request.path_params
    try:
        asked = partner.request(
            gtin=path["gtin"], serial=path["serial"], lot=path["lot"], exp=params.get("exp", ""),
            corr_uuid=params.get("corrUUID", ""), context=params.get("context", ""),
            req_gln=params.get("reqGLN", ""))
    except InvalidArgument as exc:
        return problem(400, str(exc))
    try:
        answer = partner.verify_for_partner(door.reads, door.reads.verify, door.reads.record,
                                            caller, asked, now_ms=now_ms())
    except PermissionDenied as exc:
        return problem(403, exc.message)
    data: dict[str, Any] = {"verified": answer.verified}
    if answer.failure_reason is not None:
        data["verificationFailureReason"] = answer.failure_reason.value
    if answer.additional_info is not None:
        data["additionalInfo"] = answer.additional_info.value
    return JSONResponse({
        "verificationTimestamp": _timestamp(answer.at_ms),
        "responderGLN": answer.responder_gln,
        "corrUUID": answer.corr_uuid,
        "data": data,
    }, headers={"Cache-Control": "no-store"})


def _requester(door: Frontdoor, request: Request) -> Principal:
    """The tenant credential of an ``Authorization: Bearer`` header; Unauthenticated if none,
    malformed, unknown, revoked or expired."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send 'Authorization: Bearer <API token>'")
    parsed = parse_token(token.strip())
    if parsed.tenant == OPERATOR:
        raise Unauthenticated("an operator token does not verify packs")
    try:
        access = door.data.get(parsed.tenant).access
    except NotFound:
        raise Unauthenticated("unknown API token") from None
    peer = f"{request.client.host}:{request.client.port}" if request.client else ""
    return access.authenticate_token(parsed, now_ms(), peer)


def _timestamp(at_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, as LVMS writes times."""
    moment = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"
