"""`pharmatrace serve` with its HTTP front door, fed by the command line: product fields and
links from `product add` and `product link add` / `remove`, and access logs without codes in
them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import CLI_TIMEOUT_S, Servers, pharmatrace_command


def cli(server_env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*pharmatrace_command(), *args], env=server_env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_failure(server_env: dict[str, str], *args: str) -> str:
    """What the command line says on stderr when the command fails (it must)."""
    done = subprocess.run([*pharmatrace_command(), *args], env=server_env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode != 0, done.stdout
    return done.stderr


def test_serve_answers_http_with_what_the_cli_registered(servers: Servers, tmp_path: Path
                                                         ) -> None:
    """The CLI registers a product with every public field and a leaflet link; the served
    front door resolves the link, shows the fields, answers /healthz, counts requests in the
    metrics, and its access log names routes but never a code."""
    server = servers.start(workers=1)
    env = server.env
    gtin = "09501101530010"
    cli(env, "product", "add", "--gtin", gtin, "--name", "Ibuprofen 400 mg tablets",
        "--generic-name", "ibuprofen", "--strength", "400 mg", "--pack-spec", "20 tablets",
        "--dosage-form", "tablet", "--mah", "Demo MAH Ltd", "--manufacturer", "Demo Plant",
        "--approval-number", "H20260001")
    cli(env, "product", "link", "add", "--product", gtin, "--type", "gs1:epil",
        "--href", "https://example.com/ibuprofen-leaflet.pdf", "--lang", "en",
        "--title", "Leaflet")
    assert "gs1:epil\ten\thttps://example.com/ibuprofen-leaflet.pdf" in cli(
        env, "product", "link", "list", "--product", gtin)
    cli(env, "batch", "add", "--product", gtin, "--lot", "IB1", "--expires", "2029-01-31")
    codes_file = tmp_path / "codes.txt"
    cli(env, "codes", "request", "--product", gtin, "--lot", "IB1", "--count", "2",
        "--request-id", "e2e-http-1", "--format", "hri", "--out", str(codes_file))
    code = codes_file.read_text().split()[0]
    serial = code.split("(21)")[1]
    base = f"http://127.0.0.1:{server.ports['http']}"
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/healthz").text == "ok\n"
        leaflet = http.get(f"/01/{gtin}/21/{serial}?linkType=gs1:epil")
        page = http.get("/check", params={"code": code}, headers={"Accept-Language": "en"})
    assert leaflet.status_code == 307
    assert leaflet.headers["location"] == "https://example.com/ibuprofen-leaflet.pdf"
    for text in ("Ibuprofen 400 mg tablets", "ibuprofen", "20 tablets", "tablet",
                 "Demo MAH Ltd", "Demo Plant", "H20260001", "IB1", "2029-01-31"):
        assert text in page.text, text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = httpx.get(server.metrics_url, timeout=10).text
        if 'pharmatrace_http_requests_total{route="check",status="' in metrics:
            break
        time.sleep(0.2)
    assert 'pharmatrace_http_requests_total{route="resolver",status="307"}' in metrics
    log = server.log_text()
    assert '"route": "check"' in log and '"route": "resolver"' in log
    assert serial not in log


def test_a_removed_link_is_no_longer_offered(servers: Servers, tmp_path: Path) -> None:
    """`product link remove` takes a link off the product: within the second a worker trusts
    a product record it read, the resolver that redirected to the English leaflet offers the
    Chinese one left instead; the list shows only that one, and removing the link again says
    there is no such link."""
    server = servers.start(workers=1)
    env = server.env
    gtin = "09501101530027"
    cli(env, "product", "add", "--gtin", gtin, "--name", "Paracetamol 500 mg tablets")
    for lang in ("en", "zh-CN"):
        cli(env, "product", "link", "add", "--product", gtin, "--type", "epil",
            "--href", f"https://example.com/leaflet-{lang}.pdf", "--lang", lang)
    base = f"http://127.0.0.1:{server.ports['http']}"
    with httpx.Client(base_url=base, timeout=30) as http:
        before = http.get(f"/01/{gtin}?linkType=gs1:epil", headers={"Accept-Language": "en"})
        said = cli(env, "product", "link", "remove", "--product", gtin, "--type", "epil",
                   "--lang", "en")
        deadline = time.monotonic() + 10
        while True:
            after = http.get(f"/01/{gtin}?linkType=gs1:epil",
                             headers={"Accept-Language": "en"})
            if after.headers.get("location") != before.headers["location"] or (
                    time.monotonic() > deadline):
                break
            time.sleep(0.1)
    assert before.headers["location"] == "https://example.com/leaflet-en.pdf"
    assert "removed gs1:epil https://example.com/leaflet-en.pdf" in said
    assert after.status_code == 307
    assert after.headers["location"] == "https://example.com/leaflet-zh-CN.pdf"
    assert cli(env, "product", "link", "list", "--product", gtin).splitlines() == [
        "gs1:epil\tzh-CN\thttps://example.com/leaflet-zh-CN.pdf\t"]
    again = cli_failure(env, "product", "link", "remove", "--product", gtin, "--type", "epil",
                        "--lang", "en")
    assert "has no gs1:epil link in en" in again


def test_a_second_server_refuses_the_ports_a_running_one_serves(servers: Servers,
                                                                tmp_path: Path) -> None:
    """A second `serve` over another data directory, given the verification and HTTP ports a
    running server's workers listen on, stops at once naming the port in use, rather than
    sharing those ports with it (they are opened with SO_REUSEPORT, for one server's workers)
    and answering part of its traffic from another ledger."""
    first = servers.start(workers=1)
    command = [*pharmatrace_command(), "serve", "--dev", "--insecure",
               "--data", str(tmp_path / "other"), "--issue-port", "0", "--metrics-port", "0",
               "--verify-port", str(first.ports["verify"]),
               "--http-port", str(first.ports["http"]), "--workers", "1"]
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        _, stderr = second.communicate(timeout=CLI_TIMEOUT_S / 4)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    assert second.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert f"verify_port: 127.0.0.1:{first.ports['verify']} is in use" in stderr
    with httpx.Client(base_url=f"http://127.0.0.1:{first.ports['http']}") as http:
        assert http.get("/healthz").text.strip() == "ok"
