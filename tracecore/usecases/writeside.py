"""What the writing use cases work with: the data directory, its writer lanes, the group
committer of lifecycle requests, and the clock. Built once when the service starts; tests build
their own with a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tracecore.clock import now_ms
from tracecore.credentials import Principal, Role
from tracecore.ledger import alerts, lifecycle
from tracecore.ledger.tenants import DataDir
from tracecore.usecases.importer import Importer
from tracecore.usecases.writer import Batcher, Writer


class GroupCommitter(Batcher[lifecycle.Request, lifecycle.Result]):
    """Lifecycle requests of one tenant that arrive while its writer lane is busy are applied in
    the lane's next transaction: many requests, one commit, one fsync. The alerts they raise are
    stored once that transaction is durable, before any of them is answered."""

    def __init__(self, writer: Writer, data: DataDir, clock: Callable[[], int]) -> None:
        super().__init__(writer, self._apply)
        self._data = data
        self._clock = clock

    def _apply(self, tenant_name: str, requests: list[lifecycle.Request]
               ) -> list[lifecycle.Result]:
        tenant = self._data.get(tenant_name)
        results = lifecycle.apply(tenant.ledger, requests, self._clock(),
                                  self._writer.make_way)
        raised = [a for result in results if result.applied for a in result.alerts]
        if raised:
            alerts.book(tenant.path, tenant.name, tenant.ledger.codes).append(raised)
        return results


@dataclass
class WriteSide:
    """The storage, writer lanes and clock every writing use case is given."""

    data: DataDir
    writer: Writer
    committer: GroupCommitter
    clock: Callable[[], int] = now_ms
    importer: Importer = field(default_factory=Importer)
    default_time_zone: str = "UTC"
    """The zone of a tenant created without one (the ``default_time_zone`` setting)."""

    @classmethod
    def open(cls, data: DataDir, clock: Callable[[], int] = now_ms,
             importer: Importer | None = None) -> WriteSide:
        writer = Writer()
        importer = importer or Importer()
        importer.make_way = writer.make_way
        return cls(data, writer, GroupCommitter(writer, data, clock), clock, importer)

    def close(self) -> None:
        """Waits for the writes in progress, then stops the writer lanes and the importer's
        processes."""
        self.writer.close()
        self.importer.close()


def who(caller: Principal | None) -> str:
    """'credential/role' of a caller, as event records name who did it ("" when unknown)."""
    if caller is None:
        return ""
    return f"{caller.credential_id or 'anonymous'}/{caller.role.name.lower()}"


def sender(caller: Principal | None) -> str:
    """The credential an event's rules hold to custody: "" for the tenant's admin and the
    platform, who act for the whole tenant."""
    if caller is None or caller.role in (Role.ADMIN, Role.OPERATOR):
        return ""
    return caller.credential_id
