"""The EPCIS 2.0 standard event query (SimpleEventQuery) over events as EPCIS writes them: the
parameters a pharmaceutical chain asks with, each one a check on an event's JSON."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracecore.epcis.vocabulary import CBV, epoch_ms
from tracecore.errors import InvalidArgument

_EPC_MEMBERS = {
    "MATCH_epc": ("epcList", "childEPCs"),
    "MATCH_parentID": ("parentID",),
    "MATCH_inputEPC": ("inputEPCList",),
    "MATCH_outputEPC": ("outputEPCList",),
    "MATCH_anyEPC": ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList"),
}

_CLASS_MEMBERS = {
    "MATCH_epcClass": ("quantityList", "childQuantityList"),
    "MATCH_inputEPCClass": ("inputQuantityList",),
    "MATCH_outputEPCClass": ("outputQuantityList",),
    "MATCH_anyEPCClass": ("quantityList", "childQuantityList", "inputQuantityList",
                          "outputQuantityList"),
}

# EQ_ parameters on a member holding one CBV term or URI, and the CBV kind of its values.
_TERMS = {"EQ_action": ("action", ""), "EQ_bizStep": ("bizStep", "BizStep-"),
          "EQ_disposition": ("disposition", "Disp-"), "EQ_transformationID":
          ("transformationID", "")}

_PLACES = {"EQ_readPoint": "readPoint", "EQ_bizLocation": "bizLocation"}

# EQ_{list}_{type}: members of a typed list, and the CBV kind of the type.
_TYPED = {"EQ_bizTransaction_": ("bizTransactionList", "bizTransaction", "BTT-"),
          "EQ_source_": ("sourceList", "source", "SDT-"),
          "EQ_destination_": ("destinationList", "destination", "SDT-")}

_TIMES = {"GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime"}

_CBV_URN = re.compile(r"urn:epcglobal:cbv:(?:bizstep|disp|btt|sdt|er):(.+)")

#: The parameters ``parse_query`` takes; EQ_bizTransaction_, EQ_source_ and EQ_destination_
#: take the type after the underscore ("EQ_bizTransaction_po").
PARAMETERS = ("eventType", *sorted(_TIMES), *_TERMS, *_PLACES, *_EPC_MEMBERS, *_CLASS_MEMBERS,
              *_TYPED, "EQ_eventID", "EQ_persistentDisposition_set",
              "EQ_persistentDisposition_unset", "EQ_errorDeclaration_reason",
              "EXISTS_errorDeclaration")

Check = Callable[[Mapping[str, Any], int], bool]


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed standard query: every check an event must pass (parameters are ANDed, the
    values of one parameter ORed)."""

    checks: tuple[Check, ...] = field(default=())
    from_ms: int = 0
    """GE_eventTime as epoch ms (0: none), for a store to skip events cheaply."""
    to_ms: int = 0
    """LT_eventTime as epoch ms (0: none)."""

    def matches(self, wire: Mapping[str, Any], recorded_ms: int = 0) -> bool:
        """Whether an EPCIS event (as JSON), recorded at ``recorded_ms``, answers the query."""
        return all(check(wire, recorded_ms) for check in self.checks)


def parse_query(params: Mapping[str, str | Sequence[str]]) -> Query:
    """The query of standard parameters, a value or several as a list or separated by "|" as
    the REST binding writes them; InvalidArgument naming an unknown or malformed parameter."""
    checks: list[Check] = []
    from_ms = to_ms = 0
    for name, given in params.items():
        values = _values(given)
        if not values:
            raise InvalidArgument("needs a value", field=name)
        if name == "eventType":
            checks.append(_one_of("type", values))
        elif name in _TIMES:
            ms = _time(name, values)
            checks.append(_time_check(name, ms))
            if name == "GE_eventTime":
                from_ms = ms
            elif name == "LT_eventTime":
                to_ms = ms
        elif name in _TERMS:
            member, kind = _TERMS[name]
            checks.append(_term_check(member, kind, values))
        elif name in _PLACES:
            checks.append(_place_check(_PLACES[name], values))
        elif name in _EPC_MEMBERS:
            checks.append(_epc_check(_EPC_MEMBERS[name], values))
        elif name in _CLASS_MEMBERS:
            checks.append(_class_check(_CLASS_MEMBERS[name], values))
        elif name == "EQ_eventID":
            checks.append(_one_of("eventID", values))
        elif name in ("EQ_persistentDisposition_set", "EQ_persistentDisposition_unset"):
            checks.append(_persistent_check(name.rsplit("_", 1)[1], values))
        elif name == "EQ_errorDeclaration_reason":
            checks.append(_reason_check(values))
        elif name == "EXISTS_errorDeclaration":
            checks.append(_declared)
        else:
            typed = next((prefix for prefix in _TYPED if name.startswith(prefix)
                          and len(name) > len(prefix)), None)
            if typed is None:
                raise InvalidArgument("is not a query parameter pharmatrace supports: those are "
                                      f"{', '.join(PARAMETERS)}", field=name)
            checks.append(_typed_check(*_TYPED[typed], name[len(typed):], values))
    return Query(tuple(checks), from_ms, to_ms)


def _values(given: str | Sequence[str]) -> list[str]:
    texts = [given] if isinstance(given, str) else list(given)
    return [part for text in texts for part in text.split("|") if part]


def _time(name: str, values: list[str]) -> int:
    if len(values) != 1:
        raise InvalidArgument("takes one time", field=name)
    try:
        return epoch_ms(values[0])
    except ValueError:
        raise InvalidArgument("must be an RFC 3339 date-time such as 2024-05-01T00:00:00Z",
                              field=name) from None


def _time_check(name: str, ms: int) -> Check:
    def check(wire: Mapping[str, Any], recorded_ms: int) -> bool:
        if name.endswith("eventTime"):
            at = epoch_ms(wire["eventTime"])
        elif "recordTime" in wire:
            at = epoch_ms(wire["recordTime"])
        else:
            at = recorded_ms
        return at >= ms if name.startswith("GE") else at < ms
    return check


def _bare(value: str, kind: str) -> str:
    """A CBV value in one form: bare term for a CBV URI, CURIE or 1.x URN; else unchanged."""
    urn = _CBV_URN.fullmatch(value)
    if urn is not None:
        return urn[1]
    for prefix in (CBV + kind, "cbv:" + kind):
        if kind and value.startswith(prefix):
            return value[len(prefix):]
    return value


def _one_of(member: str, values: list[str]) -> Check:
    wanted = set(values)
    return lambda wire, _: wire.get(member) in wanted


def _term_check(member: str, kind: str, values: list[str]) -> Check:
    wanted = {_bare(v, kind) for v in values}
    return lambda wire, _: isinstance(wire.get(member), str) and _bare(wire[member],
                                                                        kind) in wanted


def _place_check(member: str, values: list[str]) -> Check:
    wanted = set(values)

    def check(wire: Mapping[str, Any], _: int) -> bool:
        place = wire.get(member)
        return isinstance(place, dict) and place.get("id") in wanted
    return check


def _matches_pattern(value: str, patterns: list[str]) -> bool:
    """An identifier equal to one of the patterns, or under an EPC pattern ending in ".*"."""
    for pattern in patterns:
        if pattern.endswith(".*"):
            base = pattern[:-1].replace(":idpat:", ":id:")
            if value.startswith(base):
                return True
        elif value == pattern:
            return True
    return False


def _epc_check(members: tuple[str, ...], values: list[str]) -> Check:
    def check(wire: Mapping[str, Any], _: int) -> bool:
        for member in members:
            found = wire.get(member)
            for epc in [found] if isinstance(found, str) else found or []:
                if isinstance(epc, str) and _matches_pattern(epc, values):
                    return True
        return False
    return check


def _class_check(members: tuple[str, ...], values: list[str]) -> Check:
    def check(wire: Mapping[str, Any], _: int) -> bool:
        return any(isinstance(q, dict) and isinstance(q.get("epcClass"), str)
                   and _matches_pattern(q["epcClass"], values)
                   for member in members for q in wire.get(member, []))
    return check


def _reason_check(values: list[str]) -> Check:
    wanted = {_bare(v, "ER-") for v in values}

    def check(wire: Mapping[str, Any], _: int) -> bool:
        declaration = wire.get("errorDeclaration")
        return isinstance(declaration, dict) and _bare(str(declaration.get("reason", "")),
                                                       "ER-") in wanted
    return check


def _declared(wire: Mapping[str, Any], _: int) -> bool:
    return "errorDeclaration" in wire


def _persistent_check(which: str, values: list[str]) -> Check:
    wanted = {_bare(v, "Disp-") for v in values}

    def check(wire: Mapping[str, Any], _: int) -> bool:
        persistent = wire.get("persistentDisposition", {})
        return any(_bare(v, "Disp-") in wanted for v in persistent.get(which, []))
    return check


def _typed_check(member: str, value_key: str, kind: str, type_: str,
                 values: list[str]) -> Check:
    wanted_type = _bare(type_, kind)
    wanted = set(values)

    def check(wire: Mapping[str, Any], _: int) -> bool:
        return any(isinstance(entry, dict) and _bare(str(entry.get("type", "")), kind)
                   == wanted_type and entry.get(value_key) in wanted
                   for entry in wire.get(member, []))
    return check
