"""The whole error tree of pharmatrace.

Every error the domain raises is a ``TraceError``. Each class names the gRPC status code it maps
to (as a string, so the core needs no grpc import); one interceptor in the services does the
mapping. Messages are written for the caller: they name the field and never carry a key, a token,
a passphrase or a file system path.
"""

from __future__ import annotations


class TraceError(Exception):
    """Base of every pharmatrace error; ``status`` is the gRPC status code name."""

    status = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(TraceError):
    """The request is malformed: a bad field value, a bound exceeded."""

    status = "INVALID_ARGUMENT"


class ParseError(InvalidArgument):
    """Scanned or typed text is not a code in any supported form; ``reason`` says why."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason, field=field)
        self.reason = reason


class NotFound(TraceError):
    """A named tenant, product, batch, party, pool or code does not exist."""

    status = "NOT_FOUND"


class AlreadyExists(TraceError):
    """Creating something whose identity is taken."""

    status = "ALREADY_EXISTS"


class FailedPrecondition(TraceError):
    """The request is well formed but the ledger's state does not allow it."""

    status = "FAILED_PRECONDITION"


class DensityLimitReached(FailedPrecondition):
    """Minting more codes under this key would make codes too easy to guess: rotate the key."""


class ResourceExhausted(TraceError):
    """Out of room (ledger map, disk) or over a rate limit."""

    status = "RESOURCE_EXHAUSTED"


class RateLimited(ResourceExhausted):
    """Over a rate limit (public verification); ``retry_after_ms`` says when to come back."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"rate limit exceeded: retry in {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class Unavailable(TraceError):
    """The tenant is offline (maintenance, restore) or the service is shutting down."""

    status = "UNAVAILABLE"


class PermissionDenied(TraceError):
    """The caller is known but may not do this."""

    status = "PERMISSION_DENIED"


class Unauthenticated(TraceError):
    """No valid credential was presented."""

    status = "UNAUTHENTICATED"


class KeyRingError(TraceError):
    """The key ring file cannot be opened: wrong passphrase, modified or truncated file."""

    status = "FAILED_PRECONDITION"


class LedgerCorrupt(TraceError):
    """A ledger record or the audit chain does not hold together."""

    status = "DATA_LOSS"
