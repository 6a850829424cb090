"""Every lifecycle step and read from the command line against a real server: codes from
arguments, a file or a pipe, rows in input order with their line numbers, a summary, a progress
bar on a terminal only; and scrambled scans repaired by verify."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import CLI_TIMEOUT_S, on_a_terminal, pharmatrace_command
from tests.e2e.test_cli import GTIN, LOT, _lines, catalog  # noqa: F401 - the fixture
from tracecore.codes import parse
from tracecore.epcis.schema import check_schema

pytestmark = pytest.mark.timeout(300)

COUNT = 10_000


@pytest.fixture(scope="module")
def site(server, catalog: str, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
         ) -> dict[str, Path]:
    """The catalog's tenant with a plant, a distributor and a pharmacy, COUNT + 20 unit codes
    and 2 case codes, requested through the command line (not yet commissioned)."""
    folder = tmp_path_factory.mktemp("site")
    for party, kind in (("plant-1", "plant"), ("dc-1", "distributor"),
                        ("pharmacy-7", "pharmacy")):
        done = subprocess.run([*pharmatrace_command(), "party", "add", "--tenant", catalog,
                               "--id", party, "--name", party, "--kind", kind],
                              env=server.env, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT_S, check=False)
        assert done.returncode == 0, done.stderr
    out = {}
    for name, level, count in (("units", "unit", COUNT + 20), ("cases", "case", 2)):
        out[name] = folder / f"{name}.txt"
        done = subprocess.run(
            [*pharmatrace_command(), "codes", "request", "--tenant", catalog, "--product", GTIN,
             "--lot", LOT, "--count", str(count), "--level", level, "--request-id",
             f"life-{uuid.uuid4().hex}", "--out", str(out[name]), "--quiet"],
            env=server.env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
        assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def commissioned(server, catalog: str, site: dict[str, Path]) -> list[str]:  # noqa: F811
    """Every unit and case code commissioned at plant-1 with `pharmatrace commission --file`."""
    codes = _lines(site["units"]) + _lines(site["cases"])
    done = subprocess.run(
        [*pharmatrace_command(), "commission", "--tenant", catalog, "--party", "plant-1",
         "--file", "-", "--json"], input="\n".join(codes) + "\n", env=server.env,
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["input"] for r in rows] == codes
    assert {r["outcome"] for r in rows} == {"recorded"}
    assert f"recorded {len(codes):,}" in done.stderr
    return _lines(site["units"])


def test_what_the_steps_recorded_exports_as_a_valid_epcis_document(
        cli, catalog: str, commissioned: list[str], tmp_path: Path) -> None:  # noqa: F811
    """The events the command line's steps recorded export as an EPCIS 2.0 document that
    conforms to GS1's JSON schema (each eventID a URI), as a partner's system checks it."""
    out = tmp_path / "export.jsonld"
    cli.ok("epcis", "export", "--tenant", catalog, "--out", str(out))
    document = json.loads(out.read_text("utf-8"))
    assert document["epcisBody"]["eventList"]
    check_schema(document)


def test_ship_reads_10000_codes_from_a_pipe_in_order_with_a_summary(
        cli, catalog: str, commissioned: list[str]) -> None:  # noqa: F811
    """A pipe of 10,000 codes to `ship --file -` answers one JSON line per code in input order,
    all recorded, and ends with a summary counting them; no progress bar in a pipe."""
    codes = commissioned[:COUNT]
    result = cli("ship", "--tenant", catalog, "--party", "plant-1", "--to", "dc-1",
                 "--file", "-", "--json", "--batch-size", "3000",
                 input="\n".join(codes) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in rows] == codes
    assert [r["line"] for r in rows[:3]] == ["1", "2", "3"]
    assert {r["outcome"] for r in rows} == {"recorded"}
    assert f"{COUNT:,} codes in " in result.stderr and f"recorded {COUNT:,}" in result.stderr
    assert "\r" not in result.stderr and "━" not in result.stderr


def test_bad_input_lines_are_reported_with_their_line_numbers(
        cli, catalog: str, commissioned: list[str], tmp_path: Path) -> None:  # noqa: F811
    """A file with a line that is no code ships the good codes, names the bad one with its line
    number and reason, and exits 1."""
    good = commissioned[COUNT:COUNT + 2]
    lines = [good[0], "", "not-a-code", good[1]]
    (tmp_path / "delivery.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("ship", "--tenant", catalog, "--party", "plant-1", "--to", "dc-1",
                 "--file", "delivery.txt", "--csv")
    assert result.returncode == 1, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["LINE"] for r in rows] == ["1", "3", "4"]
    bad = rows[1]
    assert bad["INPUT"] == "not-a-code" and bad["OUTCOME"] == "refused" and bad["REASON"]
    assert [r["OUTCOME"] for r in rows] == ["recorded", "refused", "recorded"]
    assert "recorded 2, refused 1" in result.stderr


def test_receive_dispense_undo_decommission_destroy_from_arguments(
        cli, catalog: str, commissioned: list[str]) -> None:  # noqa: F811
    """The steps of a pack's life from arguments: received at the pharmacy, dispensed, the
    dispensing undone, exported; another destroyed; trace shows the status and history."""
    first, second = commissioned[:2]
    cli.ok("receive", "--tenant", catalog, "--party", "dc-1", first, second)
    cli.ok("ship", "--tenant", catalog, "--party", "dc-1", "--to", "pharmacy-7", first)
    cli.ok("receive", "--tenant", catalog, "--party", "pharmacy-7", first)
    dispensed = cli.ok("dispense", "--tenant", catalog, "--party", "pharmacy-7", first)
    assert "recorded" in dispensed.stdout
    assert '"CODE_STATUS_DISPENSED"' in cli.ok("trace", "--tenant", catalog, first,
                                               "--json").stdout
    cli.ok("undo", "--tenant", catalog, "--party", "pharmacy-7", first)
    cli.ok("decommission", "--as", "exported", "--tenant", catalog, "--party", "pharmacy-7",
           first)
    cli.ok("destroy", "--tenant", catalog, "--party", "dc-1", "--reason", "water damage",
           second)
    traced = cli.ok("trace", "--tenant", catalog, first).stdout
    assert "EXPORTED" in traced and "decommission" in traced and "undo" in traced
    assert "DESTROYED" in cli.ok("trace", "--tenant", catalog, second).stdout
    again = cli("dispense", "--tenant", catalog, "--party", "pharmacy-7", second)
    assert again.returncode == 1 and "refused" in again.stdout


def test_pack_and_unpack_a_case(cli, catalog: str, site: dict[str, Path],  # noqa: F811
                                commissioned: list[str]) -> None:
    """pack puts codes into a case (trace shows the case), unpack takes them out again."""
    case = _lines(site["cases"])[0]
    canonical = parse(case).code.text()
    packs = commissioned[COUNT + 10:COUNT + 14]
    cli.ok("pack", "--tenant", catalog, "--party", "plant-1", "--parent", case, "--partial",
           *packs)
    assert f"in                   {canonical}" in cli.ok("trace", "--tenant", catalog,
                                                        packs[0]).stdout
    cli.ok("unpack", "--tenant", catalog, "--party", "plant-1", "--parent", case)
    assert "in                   -" in cli.ok("trace", "--tenant", catalog, packs[0]).stdout


def test_events_party_list_and_batch_list_print_rows(cli, catalog: str,  # noqa: F811
                                                      commissioned: list[str]) -> None:
    """events lists the commissioning and shipping as JSON lines; party list and batch list
    print the parties and the batch as CSV."""
    events = [json.loads(line) for line in
              cli.ok("events", "--tenant", catalog, "--json").stdout.splitlines()]
    kinds = {e["kind"] for e in events}
    assert {"EVENT_KIND_COMMISSION", "EVENT_KIND_SHIP"} <= kinds
    parties = list(csv.DictReader(io.StringIO(
        cli.ok("party", "list", "--tenant", catalog, "--csv").stdout)))
    assert {p["PARTY"] for p in parties} >= {"plant-1", "dc-1", "pharmacy-7"}
    batches = list(csv.DictReader(io.StringIO(
        cli.ok("batch", "list", "--tenant", catalog, "--csv").stdout)))
    assert (GTIN, LOT) in {(b["PRODUCT"], b["LOT"]) for b in batches}


def test_a_terminal_shows_the_progress_bar_of_a_step(server, catalog: str,  # noqa: F811
                                                      site: dict[str, Path],
                                                      commissioned: list[str]) -> None:
    """On a terminal (a pty), ship draws a progress bar with the count and the rate."""
    codes = commissioned[COUNT + 14:COUNT + 20]
    status, screen = on_a_terminal(
        ["ship", "--tenant", catalog, "--party", "plant-1", "--to", "dc-1", "--batch-size", "2",
         *codes], server.env)
    assert status == 0, screen
    assert "6/6" in screen and "/s" in screen and "━" in screen, screen


def test_verify_repairs_a_caps_lock_scan_and_hints_at_a_layout(
        cli, catalog: str, commissioned: list[str]) -> None:  # noqa: F811
    """A code typed with Caps Lock on verifies as the code it was, says it was repaired and
    is counted in the summary; a scan with characters no US keyboard types gets a hint."""
    code = commissioned[COUNT + 5]
    scrambled = code.swapcase()
    result = cli("verify", "--tenant", catalog, scrambled, "ÖÄ" + code[2:], "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["verdict"] == "VERDICT_GENUINE", rows[0]
    assert "Caps Lock" in rows[0]["repaired"]["what"]
    assert rows[0]["input"] == scrambled
    assert rows[1]["verdict"] != "VERDICT_GENUINE" and "keyboard" in rows[1]["hint"]
    assert "repaired: 1" in result.stderr
    table = cli("verify", "--tenant", catalog, scrambled).stdout
    assert "repaired as" in table


def test_ship_and_receive_under_a_bill_then_the_receipt_is_checked(
        cli, catalog: str, commissioned: list[str]) -> None:  # noqa: F811
    """Three packs shipped under despatch advice DA-CLI-1, two received under it: `receipt
    check` names the one missing and exits 1."""
    packs = commissioned[COUNT + 6:COUNT + 9]
    cli.ok("ship", "--tenant", catalog, "--party", "plant-1", "--to", "dc-1",
           "--bill", "DA-CLI-1", "--counterparty", "dc-1", *packs)
    cli.ok("receive", "--tenant", catalog, "--party", "dc-1", "--bill", "DA-CLI-1", *packs[:2])
    checked = cli("receipt", "check", "--tenant", catalog, "--bill", "DA-CLI-1", "--json")
    assert checked.returncode == 1, checked.stderr
    rows = [json.loads(line) for line in checked.stdout.splitlines()]
    assert rows == [{"state": "missing", "code": parse(packs[2]).code.text()}]
    assert "3 packs shipped, 2 received, 1 missing, 0 extra" in checked.stderr
