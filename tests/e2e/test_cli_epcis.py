"""`pharmatrace epcis import` of partners' documents: JSON-LD and XML, all or nothing, or event by
event under --best-effort; `epcis export` gives the events back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc

from tests.e2e.conftest import Cli

DATA = Path(__file__).parent.parent / "data" / "epcis"


def _tenant(cli: Cli) -> str:
    tenant = f"epcis-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(cli.server.issue_addr) as channel:
        admin_pb2_grpc.AdminStub(channel).CreateTenant(
            apb.CreateTenantRequest(tenant=tenant, name="EPCIS Partner Ltd"), timeout=30)
    return tenant


def test_best_effort_import_records_the_good_events_and_names_the_bad(cli: Cli,
                                                                      tmp_path: Path) -> None:
    """One bad event refuses the document; with --best-effort only it, by its JSON path."""
    tenant = _tenant(cli)
    document = json.loads((DATA / "association.jsonld").read_text("utf-8"))
    document["epcisBody"]["eventList"][0]["eventTime"] = "yesterday"
    path = tmp_path / "partner.jsonld"
    path.write_text(json.dumps(document), "utf-8")
    whole = cli("epcis", "import", "--tenant", tenant, str(path))
    assert whole.returncode == 1
    assert "$.epcisBody.eventList[0].eventTime" in whole.stderr
    partial = cli("epcis", "import", "--tenant", tenant, "--best-effort", str(path))
    assert partial.returncode == 1
    assert "2 events: 1 recorded" in partial.stdout
    assert "event 0: $.epcisBody.eventList[0].eventTime" in partial.stderr


def test_xml_import_then_export_gives_the_events_back(cli: Cli, tmp_path: Path) -> None:
    """An EPCIS 1.2 XML document's events come back out of export as EPCIS 2.0 JSON."""
    tenant = _tenant(cli)
    cli.ok("epcis", "import", "--tenant", tenant,
           str(DATA / "epcis-1.2-object-transformation.xml"))
    out = tmp_path / "out.jsonld"
    cli.ok("epcis", "export", "--tenant", tenant, "--out", str(out))
    expected = json.loads((DATA / "epcis-1.2-object-transformation.expected.jsonld")
                          .read_text("utf-8"))
    exported = json.loads(out.read_text("utf-8"))
    assert exported["epcisBody"]["eventList"] == expected["epcisBody"]["eventList"]
