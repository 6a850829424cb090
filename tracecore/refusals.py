"""Refused calls: why each was refused, who it claimed to be, and when refusals from one address
or one credential come in a burst that calls for an alert and a slower answer.

Transport-neutral: the gRPC interceptor and any other front door describe a refused call as a
``Refusal`` and feed it to one ``RefusalWatch`` per process.
"""

from __future__ import annotations

import enum
import os
import threading
from collections import deque
from dataclasses import dataclass

from tracecore.errors import InvalidArgument, TraceError


class Reason(enum.StrEnum):
    """Why a call was refused; the label of the refusals metric."""

    NO_CREDENTIAL = "no_credential"
    # S105: names of refusal reasons, not secrets.
    MALFORMED_TOKEN = "malformed_token"  # noqa: S105
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105  no such credential, or the secret is wrong
    REVOKED = "revoked"
    EXPIRED = "expired"
    UNBOUND_CERTIFICATE = "unbound_certificate"
    ROLE = "role"                            # the role table does not allow the method
    OTHER_TENANT = "other_tenant"
    OTHER_PARTY = "other_party"
    OTHER = "other"


#: The authentication and authorisation errors' messages, by the reason each one stands for.
_REASONS = (
    ("no credential", Reason.NO_CREDENTIAL),
    ("authorization metadata must be", Reason.MALFORMED_TOKEN),
    ("malformed API token", Reason.MALFORMED_TOKEN),
    ("unknown API token", Reason.UNKNOWN_TOKEN),
    ("credential revoked", Reason.REVOKED),
    ("credential expired", Reason.EXPIRED),
    ("client certificate is not bound", Reason.UNBOUND_CERTIFICATE),
    ("role may not call", Reason.ROLE),
    ("not in the authorization table", Reason.ROLE),
    ("belongs to another tenant", Reason.OTHER_TENANT),
    ("acts for party", Reason.OTHER_PARTY),
)


def reason_of(error: TraceError) -> Reason:
    """The reason an authentication or authorisation error gives."""
    for words, reason in _REASONS:
        if words in error.message:
            return reason
    return Reason.OTHER


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused call. ``credential`` is what the caller presented, never its secret: a
    token's id, or a certificate's subject."""

    at_ms: int
    reason: Reason
    method: str
    address: str             # the client's address without its port
    tenant: str = ""         # the tenant the call named or its credential belongs to
    credential: str = ""
    role: str = ""           # the role, when the credential was valid

    def describe(self) -> str:
        """One line for the audit trail and the security log."""
        who = self.credential or "no credential"
        role = f" ({self.role})" if self.role else ""
        return (f"refused {self.reason.value}: {who}{role} from {self.address} called "
                f"{self.method.rsplit('/', 1)[-1]}")


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` refusals from one address or one credential within the window."""

    key: str                 # "address:<addr>" or "credential:<id>"
    tenant: str
    count: int
    window_ms: int
    last: Refusal

    def describe(self) -> str:
        what, _, who = self.key.partition(":")
        return (f"{self.count} refused calls within {self.window_ms // 1000} s from {what} "
                f"{who}, the last {self.last.reason.value} on "
                f"{self.last.method.rsplit('/', 1)[-1]}")


@dataclass(frozen=True)
class BurstPolicy:
    """When refusals make a burst, and how long its address is then slowed down."""

    limit: int = 20
    """Refusals within ``window_ms`` from one address or one credential that make a burst."""
    window_ms: int = 60_000
    slow_ms: int = 300_000
    """How long an address is slowed after its burst."""
    delay_ms: int = 1_000
    """Added before every answer to a slowed address."""

    @classmethod
    def from_env(cls) -> BurstPolicy:
        """PHARMATRACE_REFUSAL_BURST, _WINDOW_S, _SLOW_S, _DELAY_MS override the defaults."""
        values = {}
        for name, field, scale in (("PHARMATRACE_REFUSAL_BURST", "limit", 1),
                                   ("PHARMATRACE_REFUSAL_WINDOW_S", "window_ms", 1000),
                                   ("PHARMATRACE_REFUSAL_SLOW_S", "slow_ms", 1000),
                                   ("PHARMATRACE_REFUSAL_DELAY_MS", "delay_ms", 1)):
            text = os.environ.get(name)
            if text is None:
                continue
            try:
                value = int(float(text) * scale)
            except ValueError:
                raise InvalidArgument("must be a number", field=name) from None
            if value < (1 if field != "delay_ms" else 0):
                raise InvalidArgument("must be positive", field=name)
            values[field] = value
        return cls(**values)


class RefusalWatch:
    """Counts refusals per address and per credential over a sliding window; a key reaching
    the policy's limit is a burst (reported once per window), and its address is slowed."""

    def __init__(self, policy: BurstPolicy | None = None, max_keys: int = 100_000) -> None:
        self.policy = policy or BurstPolicy()
        self._seen: dict[str, deque[int]] = {}
        self._reported: dict[str, int] = {}
        self._slowed: dict[str, int] = {}
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def note(self, refusal: Refusal) -> list[Burst]:
        """Counts one refusal; returns the bursts it completes."""
        keys = [f"address:{refusal.address}"]
        if refusal.credential:
            keys.append(f"credential:{refusal.credential}")
        now, window = refusal.at_ms, self.policy.window_ms
        bursts = []
        with self._lock:
            if len(self._seen) >= self._max_keys:
                self._seen.clear()  # bounded memory: a flood of new keys starts afresh
            for key in keys:
                times = self._seen.setdefault(key, deque())
                times.append(now)
                while times and times[0] <= now - window:
                    times.popleft()
                if len(times) < self.policy.limit:
                    continue
                if self._reported.get(key, -window) > now - window:
                    continue  # this burst was reported already
                self._reported[key] = now
                self._slowed[refusal.address] = now + self.policy.slow_ms
                bursts.append(Burst(key, refusal.tenant, len(times), window, refusal))
        return bursts

    def slowing(self) -> bool:
        """Whether any address may be slowed: when none is, ``delay_ms`` is 0 for every call,
        and a call need not look its address up."""
        return bool(self._slowed)

    def delay_ms(self, address: str, now_ms: int) -> int:
        """How long to hold a call from ``address`` before answering it: 0 unless slowed."""
        with self._lock:
            until = self._slowed.get(address)
            if until is None:
                return 0
            if until <= now_ms:
                del self._slowed[address]
                return 0
        return self.policy.delay_ms
