"""`pharmatrace serve --config`, `config check / show`, `--version`, `health` and the metrics'
build information, as an operator installing the service sees them."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import START_TIMEOUT_S, Server, pharmatrace_command, run_cli

pytestmark = pytest.mark.timeout(180)

SECRET = "correct horse battery staple"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PHARMATRACE_KEY_PASSPHRASE", "PHARMATRACE_KEY_FILE")}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env=_env(), cwd=cwd)


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    """A file using the serve options' names passes `config check`, http_port = -1 (no front
    door) included."""
    (tmp_path / "pt.toml").write_text(
        'data = "/var/lib/pharmatrace"\nhost = "0.0.0.0"\nworkers = 4\npublic_verify = true\n'
        'public_rate = 20\nmax_map_size = "64GiB"\ntls_cert = "tls/server.pem"\n'
        'tls_key = "tls/server.key"\nkey_passphrase_file = "/run/secrets/kek"\n'
        'http_port = -1\npublic_base_url = "https://verify.example.com"\n')
    result = _cli(tmp_path, "config", "check", "pt.toml")
    assert result.returncode == 0, result.stderr
    assert "11 settings, all valid" in result.stdout


@pytest.mark.parametrize(("text", "named"), [
    ("issue_prot = 50051\n", "issue_prot: unknown key"),
    ('workers = "four"\n', "workers: must be a whole number"),
    ("public_verify = 1\n", "public_verify: must be true or false"),
    ('max_map_size = "lots"\n', "max_map_size: 'lots' is not a size"),
    ('key_passphrase = "hunter2"\n', "key_passphrase: secrets are never in the configuration"),
    ("insecure = true\nissue_port = 70000\n", "issue_port: must be a port number"),
    ("insecure = true\nhttp_port = -2\n", "http_port: must be a port number"),
    ('tls_cert = "a.pem"\n', "tls_key: tls_cert and tls_key go together"),
    ("workers = [", "not valid TOML"),
    ("insecure = true\nclone_max_scans = 0\n", "clone_max_scans: must be 1 or more"),
    ('insecure = true\nlog_level = "chatty"\n', "log_level: must be one of"),
    ('insecure = true\ndev = true\nhost = "0.0.0.0"\n', "dev: turns authentication off"),
    ("insecure = true\nverify_port = 50051\n", "verify_port: 50051 is already issue_port"),
    ("insecure = true\nhttp_port = 9464\n", "metrics_port: 9464 is already http_port"),
    ('insecure = true\nclient_ca = "ca.pem"\n', "client_ca: mutual TLS needs tls_cert"),
])
def test_config_check_names_the_bad_key(tmp_path: Path, text: str, named: str) -> None:
    """A wrong file is refused in one line that names the key and what is wrong with it."""
    (tmp_path / "pt.toml").write_text(text)
    result = _cli(tmp_path, "config", "check", "pt.toml")
    assert result.returncode == 1
    assert named in result.stderr
    assert "hunter2" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text", [
    'dev = true\ninsecure = true\nhost = "0.0.0.0"\ndata = "data"\n',
    'insecure = true\nclient_ca = "ca.pem"\ndata = "data"\n',
])
def test_serve_refuses_what_config_check_refuses(tmp_path: Path, text: str) -> None:
    """`serve --config` refuses a combination of settings with the line `config check` prints,
    before it creates the data directory."""
    (tmp_path / "pt.toml").write_text(text)
    checked = _cli(tmp_path, "config", "check", "pt.toml")
    served = _cli(tmp_path, "serve", "--config", "pt.toml")
    assert checked.returncode == served.returncode == 1
    assert served.stderr == checked.stderr
    assert not (tmp_path / "data").exists()


def test_config_show_merges_flags_over_the_file_and_masks_secrets(tmp_path: Path) -> None:
    """`config show` prints the effective settings: the file's, the flags' over them, relative
    paths from the file's directory, and never the passphrase itself."""
    (tmp_path / "kek").write_text(SECRET + "\n")
    (tmp_path / "pt.toml").write_text('insecure = true\nworkers = 3\nissue_port = 6000\n'
                                      'data = "store"\nkey_passphrase_file = "kek"\n')
    result = _cli(tmp_path, "config", "show", "--config", "pt.toml", "--issue-port", "7000")
    assert result.returncode == 0, result.stderr
    shown = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert shown["issue_port"] == "7000"
    assert shown["workers"] == "3"
    assert shown["data"] == str(tmp_path / "store")
    assert shown["key_encryption_key"].endswith("(****)")
    assert SECRET not in result.stdout + result.stderr


def test_serve_runs_from_a_config_file(tmp_path: Path) -> None:
    """`serve --config FILE` listens where the file says, takes the key-encryption passphrase
    from the file it names, and reports its release and ledger format in the metrics and to
    `pharmatrace health`."""
    (tmp_path / "kek").write_text(SECRET + "\n")
    ready = tmp_path / "ready.json"
    (tmp_path / "pt.toml").write_text(
        'insecure = true\nissue_port = 0\nverify_port = 0\nmetrics_port = 0\nworkers = 1\n'
        f'data = "data"\nready_file = "{ready}"\nkey_passphrase_file = "kek"\ngrace = 1\n')
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*pharmatrace_command(), "serve", "--config", "pt.toml"],
                                   cwd=tmp_path, env=_env(), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, tmp_path / "data", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        server.ports = json.loads(ready.read_text())
        version = _cli(tmp_path, "--version").stdout.strip()
        assert version.startswith("pharmatrace 0.2.0") and version.endswith("(ledger format 4)")
        release = version.split()[1]
        with urllib.request.urlopen(server.metrics_url, timeout=10) as answer:
            metrics = answer.read().decode()
        assert (f'pharmatrace_build_info{{ledger_format="4",version="{release}"}} 1.0'
                in metrics)
        health = run_cli(["health"], env=server.env, cwd=tmp_path)
        assert health.returncode == 0, health.stdout + health.stderr
        assert health.stdout.count(": SERVING") == 2
        assert SECRET not in log.read_text()
        assert f"pharmatrace {release}, ledger format 4" in log.read_text()
    finally:
        server.kill()
