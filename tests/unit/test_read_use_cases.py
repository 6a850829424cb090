"""The read side's use cases and the authorization table: every Verification and Trace RPC
runs a declared use case, the table grants exactly the declared roles, and only Verify is
open to the public."""

from __future__ import annotations

import typing

from pharmatrace.v1 import trace_pb2, verification_pb2

from tracecore.credentials import Role
from tracecore.usecases import oversight, reports, trace, verification
from tracecore.usecases.declare import REGISTRY, UseCase
from tracerpc.authz import TABLE
from verify_svc.workers import WorkerConfig

_READ_MODULES = (verification, trace, oversight, reports)


def _rpcs() -> list[str]:
    return [f"/pharmatrace.v1.{service.name}/{method.name}"
            for module in (verification_pb2, trace_pb2)
            for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods]


def test_every_read_rpc_runs_a_declared_use_case_with_the_declared_roles() -> None:
    """Each Verification and Trace method is in the table as the very declaration of a
    registered use case (not a pending entry), so its roles are the declared ones."""
    for method in _rpcs():
        declared = TABLE[method]
        assert REGISTRY.get(declared.name) is declared, method
        assert not declared.writes, method


def test_every_read_use_case_is_run_by_an_rpc() -> None:
    """No read use case is declared without a method in the table that runs it."""
    in_table = {use_case.name for use_case in TABLE.values()}
    declared = {use_case.name for use_case in REGISTRY.values()
                if use_case.name.split(".")[0] in {m.__name__.rsplit(".", 1)[1]
                                                    for m in _READ_MODULES}}
    assert declared and declared <= in_table


def test_the_table_entries_equal_the_registry_for_every_declared_use_case() -> None:
    """Whatever service runs it, a table entry naming a registered use case carries exactly its
    roles, write flag and scope."""
    for method, entry in TABLE.items():
        registered: UseCase | None = REGISTRY.get(entry.name)
        if registered is not None:
            assert (entry.roles, entry.writes, entry.scope) == (
                registered.roles, registered.writes, registered.scope), method


def test_only_verify_is_open_to_the_public() -> None:
    """The public role may call Verify and no other read method; batches are for the
    tenant's own readers."""
    public = sorted(m for m in _rpcs() if Role.PUBLIC in TABLE[m].roles)
    assert public == ["/pharmatrace.v1.Verification/Verify"]


def test_a_worker_configuration_names_only_types_that_exist() -> None:
    """Every annotation of WorkerConfig resolves (a TLS type once named a class that
    tracerpc.server did not define, which only a type checker noticed)."""
    hints = typing.get_type_hints(WorkerConfig)
    assert "tls" in hints
