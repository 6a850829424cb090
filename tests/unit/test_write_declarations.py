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

from frontdoor.epcis_runner import EpcisRunner
from tracecore.credentials import OPERATOR, Principal, Role
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracecore.usecases import credentials, epcis_capture, operations
from tracecore.usecases.declare import REGISTRY, Scope, declaration
from tracecore.usecases.writeside import WriteSide
from tracerpc.authz import TABLE, WRITES, Authorizer

WRITE_SIDE = ("issuance.", "lifecycle.", "recall.", "masterdata.", "credentials.", "operations.",
              "epcis_capture.")
#: Writing use cases no RPC runs: the EPCIS REST binding's capture jobs, applied (and audited,
#: one record per job) by the issuance process's runner.
RUN_BY_THE_REST_BINDING = {declaration(epcis_capture.apply_captures).name}
WRITING = sorted(name for name, declared in REGISTRY.items()
                 if declared.writes and name.startswith(WRITE_SIDE)
                 and name not in RUN_BY_THE_REST_BINDING)
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


def test_only_the_rest_binding_s_capture_jobs_write_without_an_rpc() -> None:
    """Every writing use case of the write side is run by an RPC except the REST binding's
    capture jobs, which the binding audits itself."""
    without_rpc = {name for name, declared in REGISTRY.items()
                   if declared.writes and name.startswith(WRITE_SIDE) and not _rpcs_of(name)}
    assert without_rpc == RUN_BY_THE_REST_BINDING
    assert REGISTRY["epcis_capture.apply_captures"].writes


def _document(event: str) -> str:
    return ('{"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], '
            '"type": "EPCISDocument", "schemaVersion": "2.0", '
            '"creationDate": "2026-03-05T09:45:00Z", "epcisBody": {"eventList": [' + event
            + ']}}')


_OBSERVED = ('{"type": "ObjectEvent", "eventTime": "2026-03-05T09:30:00.000+08:00", '
             '"eventTimeZoneOffset": "+08:00", "action": "OBSERVE", "bizStep": "inspecting", '
             '"epcList": ["https://id.gs1.org/01/04012345000016/21/PARTNER-1"]}')


def test_each_capture_job_the_rest_binding_applies_leaves_one_audit_record(
        tmp_path: Path) -> None:
    """Capture jobs applied by the REST binding's runner (apply_captures) are audited one
    record each, under the sender's credential, with the job's outcome: applied, refused as
    not an EPCIS document, refused for a credential revoked since it was queued."""
    records: list[tuple[str, lpb.AuditRecord]] = []

    async def sink(tenant: str, record: lpb.AuditRecord) -> None:
        records.append((tenant, record))

    async def scenario(side: WriteSide) -> list[str]:
        operator = Principal(OPERATOR, Role.OPERATOR)
        await operations.create_tenant(side, operator, "acme", "Acme")
        admin = Principal("acme", Role.ADMIN, "")
        kept = (await credentials.create_token(side, admin, "acme", int(Role.ADMIN), "", "k",
                                               0)).credential.credential.credential_id
        gone = (await credentials.create_token(side, admin, "acme", int(Role.ADMIN), "", "g",
                                               0)).credential.credential.credential_id
        await credentials.revoke_token(side, admin, "acme", gone)
        runner = EpcisRunner(side, sink)
        store = runner._store("acme")
        ids = []
        for n, (credential, text) in enumerate([(kept, _document(_OBSERVED)),
                                                (kept, "not an EPCIS document"),
                                                (gone, _document(_OBSERVED))]):
            job = {"captureID": f"job-{n}", "running": True, "success": True,
                   "captureErrorBehaviour": "rollback", "errors": [],
                   "caller": {"role": "ADMIN", "credential": credential, "party": ""}}
            store.add_job(job, text)
            ids.append((credential, f"job-{n}"))
        await runner.start()
        try:
            runner.stores.wake("acme")
            for _ in range(600):
                if not store.queued():
                    break
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()
        return [c for c, _ in ids]

    data = DataDir(tmp_path, KeySource.dev())
    side = WriteSide.open(data)
    try:
        senders = asyncio.run(scenario(side))
    finally:
        side.close()
        data.close()
    assert [(t, r.method, r.credential_id, r.status, r.summary.split()[0])
            for t, r in records] == [
        ("acme", "POST /epcis/capture", senders[0], "OK", "captureID=job-0"),
        ("acme", "POST /epcis/capture", senders[1], "INVALID_ARGUMENT", "captureID=job-1"),
        ("acme", "POST /epcis/capture", senders[2], "UNAUTHENTICATED", "captureID=job-2"),
    ]
