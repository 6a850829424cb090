"""The EPCIS 2.0 standard event query over a tenant's stored events, for the transports that
offer it (the REST binding's GET /events and named queries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tracecore import epcis
from tracecore.credentials import Principal
from tracecore.errors import InvalidArgument
from tracecore.ledger import exchange
from tracecore.ledger.store import Ledger
from tracecore.usecases.declare import ADMIN, DISTRIBUTOR, REGULATOR, Scope, use_case
from tracecore.usecases.trace import (
    DEFAULT_HOST,
    DEFAULT_PAGE,
    DEFAULT_PREFIX_LENGTH,
    MAX_PAGE,
    EventQuery,
    custody_party,
    event_filter,
)


@use_case(roles={ADMIN, DISTRIBUTOR, REGULATOR}, writes=False, scope=Scope.PARTY)
def query_events(ledger: Ledger, caller: Principal | None,
                 params: Mapping[str, str | Sequence[str]], page_size: int, page_token: str, *,
                 digital_link: bool = False, company_prefix_length: int = 0, host: str = ""
                 ) -> exchange.QueryPage:
    """One page of events, as EPCIS 2.0 JSON, answering the standard query parameters
    (``epcis.PARAMETERS``: EQ_bizStep, GE_eventTime, MATCH_epc, EQ_bizTransaction_po, ...), and
    the token of the next; a party-bound caller sees its own party's events, as in ListEvents."""
    size = page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"at most {MAX_PAGE}", field="page_size")
    cpl = company_prefix_length or DEFAULT_PREFIX_LENGTH
    if not 6 <= cpl <= 12:
        raise InvalidArgument("must be 6 to 12", field="company_prefix_length")
    asked = epcis.parse_query(params)
    wanted = event_filter(ledger, EventQuery(), custody_party(caller))
    return exchange.query(ledger, asked, wanted, size, page_token,
                          id_form="digital-link" if digital_link else "epc",
                          company_prefix_length=cpl, host=(host or DEFAULT_HOST).rstrip("/"))
