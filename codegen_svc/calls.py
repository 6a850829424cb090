"""What every servicer method of this service needs besides its request: who is calling."""

from __future__ import annotations

from tracecore.credentials import Principal, Role
from tracerpc.authz import CALLER

#: A server run without authorization acts for the tenant's admin, as its authorizer does.
_UNCHECKED = Principal("", Role.ADMIN)


def caller() -> Principal:
    """The authenticated caller of the RPC being handled (set by the interceptor)."""
    return CALLER.get() or _UNCHECKED
