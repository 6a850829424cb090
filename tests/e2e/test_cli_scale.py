"""The command line at the scale of its users: bulk verify with order kept, a progress bar on a
terminal and none in a pipe, exit codes scripts can use, global options anywhere, profiles,
table / JSON / CSV output and shell completion, against a real server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import lifecycle_pb2 as lcpb
from pharmatrace.v1 import lifecycle_pb2_grpc

from tests.e2e.conftest import CLI_TIMEOUT_S, on_a_terminal, pharmatrace_command
from tests.e2e.test_cli import GTIN, LOT, _lines, catalog  # noqa: F401 - the fixture

COUNT = 2_500
"""More codes than one message of --batch-size 1000 holds, so order across messages shows."""


@pytest.fixture(scope="module")
def issued(server, catalog: str, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A file of COUNT codes requested through the command line, one a line, commissioned."""
    out = tmp_path_factory.mktemp("issued") / "codes.txt"
    result = subprocess.run(
        [*pharmatrace_command(), "codes", "request", "--tenant", catalog, "--product", GTIN,
         "--lot", LOT, "--count", str(COUNT), "--request-id", f"scale-{uuid.uuid4().hex}",
         "--format", "element", "--out", str(out), "--quiet"],
        env=server.env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    with grpc.insecure_channel(server.issue_addr) as channel:
        lifecycle_pb2_grpc.LifecycleStub(channel).Commission(
            lcpb.CommissionRequest(tenant=catalog, codes=_lines(out)), timeout=60)
    return out


def test_verify_of_a_file_keeps_the_input_order_across_messages(cli, catalog: str,  # noqa: F811
                                                                issued: Path) -> None:
    """verify --file --json answers one line per code, in the file's order, all GENUINE, and
    exits 0 when every code is genuine and clean."""
    result = cli("verify", "--tenant", catalog, "--file", str(issued), "--json",
                 "--batch-size", "1000")
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["input"] for a in answers] == _lines(issued)
    assert {a["verdict"] for a in answers} == {"VERDICT_GENUINE"}
    assert f"{COUNT:,} codes" in result.stderr and f"GENUINE {COUNT:,}" in result.stderr


def test_codes_from_standard_input_are_verified(cli, catalog: str, issued: Path) -> None:  # noqa: F811
    """verify --file - reads the codes from a pipe."""
    codes = _lines(issued)[:10]
    result = cli("verify", "--tenant", catalog, "--file", "-", "--csv",
                 input="\n".join(codes) + "\n")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["CODE"] for r in rows] == codes
    assert {r["VERDICT"] for r in rows} == {"GENUINE"}


def test_exit_codes_tell_not_genuine_from_alerts_from_unreachable_from_usage(
        cli, catalog: str, issued: Path, server) -> None:  # noqa: F811
    """3 when a code is not genuine, 4 when all are genuine but one raises an alert, 5 when the
    server is unreachable, 2 for a usage error."""
    genuine = _lines(issued)[0]
    forged = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    assert cli("verify", "--tenant", catalog, genuine, forged).returncode == 3
    fresh = cli.cwd / "fresh.txt"
    cli.ok("codes", "request", "--tenant", catalog, "--product", GTIN, "--lot", LOT, "--count",
           "3", "--request-id", f"fresh-{uuid.uuid4().hex}", "--out", str(fresh), "--quiet")
    alerted = cli("verify", "--tenant", catalog, "--file", str(fresh))
    assert alerted.returncode == 4, alerted.stderr
    assert "not_commissioned 3" in alerted.stderr
    unreachable = cli("verify", "--tenant", catalog, genuine, "--verify-addr", "127.0.0.1:1")
    assert unreachable.returncode == 5
    assert cli("verify", "--no-such-option").returncode == 2


def test_global_options_work_before_or_after_the_command(cli, catalog: str,  # noqa: F811
                                                         issued: Path, server) -> None:
    """--tenant and --verify-addr are taken before the command's name as after it."""
    code = _lines(issued)[0]
    env = {k: v for k, v in server.env.items() if k != "PHARMATRACE_VERIFY_ADDR"}
    before = cli("--tenant", catalog, "--verify-addr", server.verify_addr, "verify", code,
                 "--json", env=env)
    after = cli("verify", code, "--json", "--tenant", catalog, "--verify-addr",
                server.verify_addr, env=env)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout)["verdict"] == json.loads(after.stdout)["verdict"] == (
        "VERDICT_GENUINE")


def test_a_profile_gives_addresses_and_tenant_and_flags_win(cli, catalog: str,  # noqa: F811
                                                            issued: Path, server) -> None:
    """With a default profile in $XDG_CONFIG_HOME/pharmatrace/config.toml the command needs no
    address or tenant; --profile picks another; the environment and flags override the file."""
    config = cli.cwd / "xdg" / "pharmatrace"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(
        'default_profile = "work"\n\n'
        f'[profiles.work]\nverify_addr = "{server.verify_addr}"\ntenant = "{catalog}"\n\n'
        '[profiles.broken]\nverify_addr = "127.0.0.1:1"\n', encoding="utf-8")
    env = {k: v for k, v in server.env.items()
           if k not in ("PHARMATRACE_VERIFY_ADDR", "PHARMATRACE_TENANT")}
    env["XDG_CONFIG_HOME"] = str(cli.cwd / "xdg")
    code = _lines(issued)[0]
    assert cli("verify", code, env=env).returncode == 0
    assert cli("--profile", "broken", "verify", code, "--tenant", catalog,
               env=env).returncode == 5
    assert cli("--profile", "broken", "verify", code, "--tenant", catalog,
               env={**env, "PHARMATRACE_VERIFY_ADDR": server.verify_addr}).returncode == 0
    assert cli("verify", code, "--profile", "broken", "--tenant", catalog, "--verify-addr",
               server.verify_addr, env=env).returncode == 0
    missing = cli("--profile", "nope", "verify", code, env=env)
    assert missing.returncode == 1 and "no profile 'nope'" in missing.stderr


def test_a_pipe_gets_no_progress_bar(cli, catalog: str, issued: Path) -> None:  # noqa: F811
    """Piped, verify writes only rows to stdout and only the summary to stderr: no bar."""
    result = cli("verify", "--tenant", catalog, "--file", str(issued))
    assert "\r" not in result.stderr and "━" not in result.stderr
    assert result.stderr.startswith(f"{COUNT:,} codes in ")
    assert result.stdout.splitlines()[0].split() == [
        "VERDICT", "CODE", "STATUS", "SCANS", "PRODUCT", "LOT", "EXPIRES", "ALERTS"]


def test_a_terminal_shows_a_progress_bar_with_rate(server, catalog: str,  # noqa: F811
                                                   issued: Path) -> None:
    """On a terminal (a pty), verify draws a progress bar with the count and codes a second."""
    _, screen = on_a_terminal(
        ["verify", "--tenant", catalog, "--file", str(issued), "--batch-size", "500"], server.env)
    assert f"{COUNT}/{COUNT}" in screen.replace(",", ""), screen
    assert "/s" in screen and "codes" in screen
    assert "━" in screen  # the bar itself


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_name_the_commands(cli, shell: str) -> None:
    """completion bash|zsh prints a script that completes the commands and their options."""
    script = cli.ok("completion", shell).stdout
    assert "verify" in script and "--tenant" in script and "--batch-size" in script
    if shell == "bash":
        checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True,
                                 check=False)
        assert checked.returncode == 0, checked.stderr


def test_every_command_help_shows_an_example_and_the_exit_codes(cli) -> None:
    """--help of verify and of the top command ends with an example and the exit statuses."""
    for args in (("--help",), ("verify", "--help"), ("pool", "show", "--help")):
        text = cli.ok(*args).stdout
        assert "example:" in text and "pharmatrace" in text.split("example:")[1]
        assert "exit status:" in text and "3  verify: some code is not genuine" in text


def test_read_commands_print_a_table_json_lines_or_csv(cli, catalog: str) -> None:  # noqa: F811
    """product list prints a table with a header, --json one object per product, --csv rows
    under a header; pool show prints fields as a table and the pool as JSON with --json."""
    table = cli.ok("product", "list", "--tenant", catalog).stdout.splitlines()
    assert table[0].split() == ["GTIN", "NMPA", "NAME"] and any(GTIN in r for r in table[1:])
    docs = [json.loads(line) for line in cli.ok("product", "list", "--tenant", catalog,
                                                "--json").stdout.splitlines()]
    assert GTIN in {d.get("gtin") for d in docs}
    rows = list(csv.DictReader(io.StringIO(cli.ok("product", "list", "--tenant", catalog,
                                                  "--csv").stdout)))
    assert GTIN in {r["GTIN"] for r in rows}
    request_id = f"rows-{uuid.uuid4().hex}"
    cli.ok("codes", "request", "--tenant", catalog, "--product", GTIN, "--count", "2",
           "--request-id", request_id, "--quiet", "--out", str(cli.cwd / "two.txt"))
    shown = cli.ok("pool", "show", "--tenant", catalog, "--request-id", request_id).stdout
    assert shown.splitlines()[0].split() == ["FIELD", "VALUE"] and request_id in shown
    assert json.loads(cli.ok("pool", "show", "--tenant", catalog, "--request-id", request_id,
                             "--json").stdout)["requestId"] == request_id


def test_every_command_that_runs_has_an_example_in_its_help() -> None:
    """Each runnable command's --help ends with an example line and the exit statuses."""
    import argparse

    from pharmatrace_cli.main import _parser

    missing = []
    pending = [_parser()]
    while pending:
        parser = pending.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
        if parser.get_default("run") is not None:
            help_text = parser.format_help()
            if ("example:\n  pharmatrace " not in help_text and "example:\n  eval" not in (
                    help_text)) or "exit status:" not in help_text:
                missing.append(parser.prog)
    assert not missing
