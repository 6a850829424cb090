"""`pharmatrace replica` serves the HTTP front door from its copy: the check page, the GS1
resolver and the LVMS route answer for codes issued on the writer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.nats_server import NatsServer
from tests.e2e.test_replica import _converged, _start_replica
from tests.e2e.test_replication_stream import GTIN, _holding, _newest_commit, _write
from tests.processes import stop

pytestmark = pytest.mark.timeout(240)


def test_a_replica_answers_the_check_page_resolver_and_lvms_for_codes_issued_on_the_writer(
        servers, nats_server: NatsServer, tmp_path: Path) -> None:
    """A code issued on the writer (not yet commissioned on a pack) shows on the replica's check
    page with its product and the warning the writer gives; the replica's resolver sends the
    code to that page; its LVMS route asks for an API token as the writer's does."""
    writer = servers.start(tmp_path / "writer", extra=["--nats", nats_server.url])
    serials = _write(writer.issue_addr, "L1", 20)
    _holding(nats_server.url, set(serials))
    replica_data = tmp_path / "replica"
    process, ports = _start_replica(nats_server.url, replica_data)
    try:
        _converged(replica_data, _newest_commit(nats_server.url))
        code = f"(01){GTIN}(21){serials[0]}"
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['http']}", timeout=30) as http:
            page = http.get("/check", params={"code": code}, headers={"Accept-Language": "en"})
            resolved = http.get(f"/01/{GTIN}/21/{serials[0]}")
            lvms = http.get(f"/verify/gtin/{GTIN}/lot/L1/ser/{serials[0]}")
        assert page.status_code == 200
        assert "Amoxicillin 500 mg capsules" in page.text
        assert 'data-warning="not_commissioned"' in page.text
        assert resolved.status_code == 307
        assert resolved.headers["location"].endswith(f"21%2F{serials[0]}")
        assert "/check?code=" in resolved.headers["location"]
        assert lvms.status_code == 401 and "API token" in lvms.text
    finally:
        stop(process, "pharmatrace replica")
