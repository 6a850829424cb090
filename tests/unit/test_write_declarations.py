"""Every use case that writes is audited on every RPC that runs it, whatever the RPC is named:
the audit decision comes from the use case's declaration, not from its name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from pharmatrace.v1 import admin_pb2, issuance_pb2, lifecycle_pb2  # noqa: F401 (registers them)
from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.credentials import Principal, Role
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracecore.usecases.declare import REGISTRY, Scope
from tracerpc.authz import TABLE, WRITES, Authorizer

WRITE_SIDE = ("issuance.", "lifecycle.", "recall.", "masterdata.", "credentials.", "operations.")
WRITING = sorted(name for name, declared in REGISTRY.items()
                 if declared.writes and name.startswith(WRITE_SIDE))
READING = sorted(name for name, declared in REGISTRY.items()
                 if not declared.writes and name.startswith(WRITE_SIDE))


def _rpcs_of(name: str) -> list[str]:
    return sorted(path for path, declared in TABLE.items() if declared.name == name)


def _request(path: str) -> Message:
    service, method = path.removeprefix("/").split("/")
    found = descriptor_pool.Default().FindServiceByName(service).FindMethodByName(method)
    request = message_factory.GetMessageClass(found.input_type)()
    if "tenant" in found.input_type.fields_by_name:
        request.tenant = "acme"  # type: ignore[attr-defined]
    return request


def _audited(path: str, tmp_path: Path) -> list[tuple[str, lpb.AuditRecord]]:
    records: list[tuple[str, lpb.AuditRecord]] = []

    async def sink(tenant: str, record: lpb.AuditRecord) -> None:
        records.append((tenant, record))

    data = DataDir(tmp_path, KeySource.dev())
    try:
        authorizer = Authorizer(data, audit=sink)
        caller = Principal("acme", Role.ADMIN, "c0ffee", peer="ipv4:127.0.0.1:1")
        asyncio.run(authorizer.record(path, caller, _request(path), grpc.StatusCode.OK))
    finally:
        data.close()
    return records


def test_the_write_side_declares_its_writes() -> None:
    """Issuing, lifecycle, recall, master data, credentials and operations declare writes."""
    assert {"issuance.request_codes", "issuance.return_codes", "lifecycle.receive",
            "lifecycle.undo", "credentials.bind_certificate", "operations.set_tenant_online",
            "recall.withdraw_product"} <= set(WRITING)
    assert "issuance.get_pool" in READING


@pytest.mark.parametrize("name", WRITING)
def test_every_writing_use_case_is_run_by_an_rpc_that_is_audited(name: str,
                                                                 tmp_path: Path) -> None:
    """Each RPC that runs a writing use case leaves one audit record naming it."""
    paths = _rpcs_of(name)
    assert paths, f"no RPC runs {name}"
    for path in paths:
        assert path in WRITES
        records = _audited(path, tmp_path)
        assert [(t, r.method, r.status) for t, r in records] == [("acme", path, "OK")]


@pytest.mark.parametrize("name", READING)
def test_reading_use_cases_leave_no_audit_record(name: str, tmp_path: Path) -> None:
    """RPCs that only read are not audited."""
    for path in _rpcs_of(name):
        assert path not in WRITES
        assert _audited(path, tmp_path) == []


def test_the_operator_s_use_cases_act_across_tenants() -> None:
    """Tenant operations are the platform's scope; lifecycle events act as the caller's party."""
    assert REGISTRY["operations.create_tenant"].scope is Scope.PLATFORM
    assert REGISTRY["lifecycle.ship"].scope is Scope.PARTY
    assert REGISTRY["lifecycle.import_epcis"].scope is Scope.TENANT
