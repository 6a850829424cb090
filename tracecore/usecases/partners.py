"""Exchange with partners: codes minted elsewhere recorded with their provenance, parties a
partner named confirmed or merged, and a receipt checked against the bill it was shipped under."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata
from tracecore.codes import Code, parse_many
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument, ParseError
from tracecore.events import Document, EventKind
from tracecore.ledger import foreign
from tracecore.ledger.journal import Journal
from tracecore.ledger.store import Ledger
from tracecore.mac import Mac
from tracecore.schemes import SCHEMES
from tracecore.status import Status
from tracecore.usecases.declare import (
    ADMIN,
    DISTRIBUTOR,
    LINE,
    PHARMACY,
    REGULATOR,
    Scope,
    use_case,
)
from tracecore.usecases.writeside import WriteSide, who

#: Codes one registration message may carry.
MAX_REGISTER = 10_000
MAX_NAME = 200
#: Missing and extra packs a receipt check lists (all are counted).
MAX_LISTED = 10_000
#: Business documents one event may carry.
MAX_DOCUMENTS = 20
DEFAULT_DOCUMENT_TYPE = "desadv"


@dataclass(slots=True)
class Registration:
    """What one registration did: codes recorded, already known, refused (code, reason)."""

    registered: int = 0
    known: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def not_signed_here(codes: Sequence[Code], macs: Mapping[int, Mac]) -> list[Code]:
    """The codes no key of this tenant signed: each scheme knows whether a code is its own."""
    return [c for c in codes if not SCHEMES[c.scheme].signed_here(c, macs)]


def document(type_: str, id_: str, counterparty: str = "", field: str = "documents"
             ) -> Document:
    """A checked business document: a type (CBV's po, desadv, inv... or a user-defined word or
    URI) and a number, at most ``MAX_NAME`` characters each."""
    if not id_:
        raise InvalidArgument("is required: the document's number", field=f"{field}.id")
    type_ = type_ or DEFAULT_DOCUMENT_TYPE
    for name, value in (("type", type_), ("id", id_)):
        if len(value) > MAX_NAME or "\0" in value or not value.isprintable():
            raise InvalidArgument(f"at most {MAX_NAME} printable characters",
                                  field=f"{field}.{name}")
    if counterparty:
        masterdata.party_id(counterparty, f"{field}.counterparty")
    return Document(type_, id_, counterparty)


def documents(given: Sequence[tuple[str, str, str]], field: str = "documents"
              ) -> tuple[Document, ...]:
    """Checked (type, id, counterparty) triples, at most ``MAX_DOCUMENTS``."""
    if len(given) > MAX_DOCUMENTS:
        raise InvalidArgument(f"at most {MAX_DOCUMENTS}", field=field)
    return tuple(document(*d, field=f"{field}[{i}]") for i, d in enumerate(given))


@use_case(roles={ADMIN, LINE, DISTRIBUTOR}, writes=True, scope=Scope.TENANT)
async def register_codes(side: WriteSide, caller: Principal, tenant: str, codes: Sequence[str],
                         *, minted_by: str = "", source: str = "", unused: bool = False
                         ) -> Registration:
    """Codes minted elsewhere recorded with their provenance: ACTIVE (packs on the market), or
    ISSUED for a line to commission when ``unused``. Codes signed here are refused: they are
    ours, and come from a pool."""
    if len(codes) > MAX_REGISTER:
        raise InvalidArgument(f"at most {MAX_REGISTER:,} codes per message", field="codes")
    for name, value in (("minted_by", minted_by), ("source", source)):
        if len(value) > MAX_NAME:
            raise InvalidArgument(f"at most {MAX_NAME} characters", field=name)
    found = side.data.get(tenant)
    out = Registration()
    parsed: list[Code] = []
    for text, scan in zip(codes, parse_many(codes), strict=True):
        if isinstance(scan, ParseError):
            out.refused.append((str(text)[:200], scan.reason))
        else:
            parsed.append(scan.code)
    macs = found.keys.macs()
    elsewhere = not_signed_here(parsed, macs)
    if len(elsewhere) < len(parsed):
        mine = set(parsed).difference(elsewhere)
        out.refused.extend((c.text(), "signed by this tenant: not a code minted elsewhere")
                           for c in parsed if c in mine)
    provenance = foreign.Provenance(minted_by=minted_by, told_by=source or who(caller),
                                    via="register")
    done = await side.writer.run(tenant, foreign.register, found.ledger, elsewhere, provenance,
                                 Status.ISSUED if unused else Status.ACTIVE, side.clock())
    out.registered, out.known = done.registered, done.known
    out.refused.extend(done.refused)
    return out


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def confirm_party(side: WriteSide, caller: Principal, tenant: str, party_id: str
                        ) -> cpb.Party:
    """An external party (recorded on first sight of a partner's event) confirmed as one of the
    tenant's parties."""
    masterdata.party_id(party_id, "party_id")
    return await side.writer.run(tenant, foreign.confirm, side.data.get(tenant).ledger, party_id)


@use_case(roles={ADMIN}, writes=True, scope=Scope.TENANT)
async def merge_party(side: WriteSide, caller: Principal, tenant: str, external: str,
                      into: str) -> tuple[cpb.Party, int]:
    """An external party folded into a registered one: its id (and so its GLN's events) resolve
    to that party, the packs it holds are held by that party. (That party, packs moved.)"""
    masterdata.party_id(external, "external")
    masterdata.party_id(into, "into")
    if external == into:
        raise InvalidArgument("must differ from external", field="into")
    return await side.writer.run(tenant, foreign.merge, side.data.get(tenant).ledger, external,
                                 into)


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """A receipt against its bill: packs shipped and received under it, the difference."""

    shipped: int
    received: int
    missing: list[str]
    extra: list[str]
    missing_count: int
    extra_count: int
    ship_events: list[int]
    receive_events: list[int]


@use_case(roles={ADMIN, DISTRIBUTOR, PHARMACY, REGULATOR}, writes=False, scope=Scope.TENANT)
def check_receipt(ledger: Ledger, caller: Principal | None, doc: Document) -> ReceiptCheck:
    """Packs shipped under a business document and not received under it (missing), and
    received under it but not shipped (extra). Containers count as the packs inside them, so a
    pallet shipped whole and received case by case matches. A distributor's or pharmacy's
    credential sees only the bills its party shipped, received or is named on: any other bill
    answers like one never used, so bill numbers of others cannot be probed."""
    foreign.open_late(ledger)
    own = _bill_party(caller)
    with ledger.env.read() as txn:
        journal = Journal(ledger)
        shipped: set[bytes] = set()
        received: set[bytes] = set()
        ships: list[int] = []
        receipts: list[int] = []
        events = [journal.get(txn, seq) for seq in foreign.events_of_document(ledger, txn, doc)]
        if own and not any(_names(event, own) for event in events):
            events = []
        for event in events:
            if event.kind == EventKind.SHIP.value:
                ships.append(event.seq)
                shipped.update(ledger.packs_named(txn, event.codes))
            elif event.kind == EventKind.RECEIVE.value:
                receipts.append(event.seq)
                received.update(ledger.packs_named(txn, event.codes))
    missing = sorted(shipped - received)
    extra = sorted(received - shipped)
    return ReceiptCheck(len(shipped), len(received),
                        [Code.from_key(k).text() for k in missing[:MAX_LISTED]],
                        [Code.from_key(k).text() for k in extra[:MAX_LISTED]],
                        len(missing), len(extra), ships, receipts)


def _bill_party(caller: Principal | None) -> str:
    """The party whose own bills a credential reads ("" for the admin and the regulator, who
    read every bill of the tenant)."""
    if caller is not None and caller.role in (DISTRIBUTOR, PHARMACY):
        return caller.party_id
    return ""


def _names(event: lpb.EventRecord, party: str) -> bool:
    """Whether an event under a bill was done by ``party``, went to it, or names it as the
    bill's counterparty."""
    return party in (event.party_id, event.destination) or any(
        d.counterparty == party for d in event.documents)
