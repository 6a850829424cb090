"""Verification for trading partners: the answer of GS1 Lightweight Verification Messaging 1.1
(what the US DSCSA Verification Router Service asks a manufacturer about a returned pack).

A requester is a party of the tenant (its credential is bound to it) with the GLN it sends as
``reqGLN``. The answer says whether the product identifier (GTIN, serial, lot, expiry) is one
the manufacturer put on a pack; where it is not, the standard's failure reason; where it is,
anything the requester must know (recalled, expired, suspect). Every answer, and every refusal
of a known requester, goes into the tenant's answer trail with the requester and the
correlation id.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import gs1
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument, ParseError, PermissionDenied, TraceError
from tracecore.status import Status
from tracecore.usecases.declare import DISTRIBUTOR, PHARMACY, Scope, use_case
from tracecore.usecases.public_check import Verify
from tracecore.verification import Alert, Answers, ScanContext, Verdict

#: pharmatrace.v1.ScanPurpose INSPECTION: a partner checking a pack it holds.
PARTNER_PURPOSE = 4
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CONTEXT = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_GLN = re.compile(r"[0-9]{13}")


class FailureReason(enum.StrEnum):
    """``data.verificationFailureReason`` of LVMS."""

    NO_MATCH_GTIN_SERIAL = "No_match_GTIN_Serial"
    NO_MATCH_GTIN_SERIAL_LOT = "No_match_GTIN_Serial_Lot"
    NO_MATCH_GTIN_SERIAL_EXPIRY = "No_match_GTIN_Serial_Expiry"
    NO_MATCH_GTIN_SERIAL_LOT_EXPIRY = "No_match_GTIN_Serial_Lot_Expiry"
    NOT_FOR_REDISTRIBUTION = "Not_for_re-distribution"


class AdditionalInfo(enum.StrEnum):
    """``data.additionalInfo`` of LVMS: what a requester must know about a matching pack."""

    ILLEGITIMATE = "Illegitimate"
    SUSPECT = "Suspect"
    RECALLED = "Recalled"
    EXPIRED = "Expired"


@dataclass(frozen=True, slots=True)
class PartnerRequest:
    """One LVMS request, validated."""

    gtin: str
    serial: str
    lot: str
    expiry: str
    """YYMMDD as sent."""
    corr_uuid: str
    context: str
    req_gln: str


@dataclass(frozen=True, slots=True)
class PartnerAnswer:
    """One LVMS answer."""

    corr_uuid: str
    verified: bool
    failure_reason: FailureReason | None
    additional_info: AdditionalInfo | None
    responder_gln: str
    at_ms: int


class PartnerDirectory(Protocol):
    """What the responder looks up about the parties of a tenant."""

    def party_gln(self, tenant: str, party_id: str) -> str:
        """The GLN of the tenant's party ("" when the party has none or is unknown)."""

    def responder_gln(self, tenant: str) -> str:
        """The GLN the tenant answers as: its plant's ("" when none is registered)."""


#: ``record(tenant, entry)``: keeps one answer-trail record.
Record = Callable[[str, lpb.AuditRecord], None]


def request(*, gtin: str, serial: str, lot: str, exp: str, corr_uuid: str, context: str,
            req_gln: str) -> PartnerRequest:
    """A validated request; InvalidArgument naming the first bad parameter."""
    for name, value, ai in (("gtin", gtin, "01"), ("ser", serial, "21"), ("lot", lot, "10"),
                            ("exp", exp, "17")):
        try:
            gs1.check_value(ai, value)
        except ParseError as exc:
            raise InvalidArgument(exc.reason, field=name) from None
    if not _UUID.fullmatch(corr_uuid):
        raise InvalidArgument("must be a UUID such as 0d8b5e1c-6f0e-4b8a-9d2f-5c1b2a3d4e5f",
                              field="corrUUID")
    if not _CONTEXT.fullmatch(context):
        raise InvalidArgument("must be a context such as dscsaSaleableReturn", field="context")
    if not _GLN.fullmatch(req_gln) or gs1.check_digit(req_gln[:12]) != int(req_gln[12]):
        raise InvalidArgument("must be a 13-digit GLN with a valid check digit", field="reqGLN")
    return PartnerRequest(gtin, serial, lot, exp, corr_uuid.lower(), context, req_gln)


@use_case(roles={DISTRIBUTOR, PHARMACY}, writes=True, scope=Scope.PARTY)
def verify_for_partner(directory: PartnerDirectory, verify: Verify, record: Record,
                       caller: Principal, asked: PartnerRequest, *, now_ms: int) -> PartnerAnswer:
    """The LVMS answer for ``asked``, from a requester whose credential is bound to the party
    with GLN ``asked.req_gln``; PermissionDenied otherwise. Audited either way."""
    entry = lpb.AuditRecord(
        at_ms=now_ms, credential_id=caller.credential_id, role=int(caller.role),  # type: ignore[arg-type]
        peer=caller.peer, method="LVMS GET /verify",
        summary=(f"corrUUID={asked.corr_uuid} reqGLN={asked.req_gln} context={asked.context} "
                 f"gtin={asked.gtin} ser={asked.serial} lot={asked.lot} exp={asked.expiry}"),
        status="OK")
    try:
        if caller.role not in verify_for_partner.use_case.roles:  # type: ignore[attr-defined]
            raise PermissionDenied(f"the {caller.role.name.lower()} role may not verify for "
                                   "trading partners")
        gln = directory.party_gln(caller.tenant, caller.party_id) if caller.party_id else ""
        if not gln or gln != asked.req_gln:
            raise PermissionDenied("this credential does not act for the party with this GLN",
                                   field="reqGLN")
        context = ScanContext(party_id=caller.party_id, purpose=PARTNER_PURPOSE)
        answers = verify(caller.tenant, f"(01){asked.gtin}(21){gs1.escape_hri(asked.serial)}",
                         context, now_ms)
        answer = _answer(answers, asked, directory.responder_gln(caller.tenant), now_ms)
    except TraceError as exc:
        entry.status = exc.status
        record(caller.tenant, entry)
        raise
    entry.summary += f" verified={str(answer.verified).lower()}"
    if answer.failure_reason is not None:
        entry.summary += f" reason={answer.failure_reason}"
    if answer.additional_info is not None:
        entry.summary += f" info={answer.additional_info}"
    record(caller.tenant, entry)
    return answer


def _answer(answers: Answers, asked: PartnerRequest, responder_gln: str, now_ms: int
            ) -> PartnerAnswer:
    def answer(verified: bool, reason: FailureReason | None = None,
               info: AdditionalInfo | None = None) -> PartnerAnswer:
        return PartnerAnswer(asked.corr_uuid, verified, reason, info, responder_gln, now_ms)

    # A code minted elsewhere (KNOWN_FOREIGN) is not verified here: an LVMS answer speaks for
    # the GTIN's brand owner, whose verification service the lookup directory routes to; a
    # ledger that only recorded another company's pack cannot say its owner assigned it.
    if answers.verdicts[0] != Verdict.GENUINE:
        if Alert.KEY_REVOKED.bit & answers.alert_masks[0]:
            return answer(False, FailureReason.NOT_FOR_REDISTRIBUTION, AdditionalInfo.ILLEGITIMATE)
        return answer(False, FailureReason.NO_MATCH_GTIN_SERIAL)
    batch = (answers.batches[answers.batch_indexes[0]] if answers.batch_indexes[0] >= 0
             else None)
    lot_differs = batch is None or batch.lot != asked.lot
    expiry_differs = batch is None or not _same_expiry(asked.expiry, batch.expires_on)
    if lot_differs and expiry_differs:
        return answer(False, FailureReason.NO_MATCH_GTIN_SERIAL_LOT_EXPIRY)
    if lot_differs:
        return answer(False, FailureReason.NO_MATCH_GTIN_SERIAL_LOT)
    if expiry_differs:
        return answer(False, FailureReason.NO_MATCH_GTIN_SERIAL_EXPIRY)
    mask, status = answers.alert_masks[0], answers.statuses[0]
    if status in (Status.VOIDED, Status.ISSUED):
        # The code never went onto a pack that left the plant: a pack carrying it is not ours.
        return answer(False, FailureReason.NOT_FOR_REDISTRIBUTION, AdditionalInfo.ILLEGITIMATE)
    if mask & (Alert.DESTROYED_OR_STOLEN.bit | Alert.CLONE_SUSPECTED.bit
               | Alert.ALREADY_DECOMMISSIONED.bit):
        return answer(True, info=AdditionalInfo.SUSPECT)
    if mask & (Alert.RECALLED.bit | Alert.WITHDRAWN.bit):
        return answer(True, info=AdditionalInfo.RECALLED)
    if mask & Alert.EXPIRED.bit:
        return answer(True, info=AdditionalInfo.EXPIRED)
    return answer(True)


def _same_expiry(yymmdd: str, expires_on: str) -> bool:
    """Whether the sent YYMMDD (day 00: the month's last day) is the batch's expiry date."""
    try:
        recorded = dt.date.fromisoformat(expires_on)
        sent = gs1.expiry_date(yymmdd, today=recorded)
    except (ValueError, ParseError):
        return False
    return sent == recorded
