"""The tenant's zone from the command line: `tenant create --tz`, the server's
default_time_zone for a tenant created without one, `tenant policy --tz` refusing an unknown
IANA name, and `report recount`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Servers, run_cli


def test_tenant_zones_from_the_command_line(servers: Servers, tmp_path: Path) -> None:
    """A server started with --default-time-zone Asia/Shanghai gives it to a tenant created
    without --tz; --tz Europe/Paris wins; an unknown zone fails naming it and changes nothing;
    report recount says the zone it cut the days in."""
    server = servers.start(extra=["--default-time-zone", "Asia/Shanghai"])

    def cli(*args: str) -> tuple[int, str, str]:
        done = run_cli(args, env=server.env, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    assert cli("tenant", "create", "east")[0] == 0
    assert cli("tenant", "create", "west", "--tz", "Europe/Paris")[0] == 0
    assert "time zone: Asia/Shanghai" in cli("tenant", "policy", "--tenant", "east")[1]
    assert "time zone: Europe/Paris" in cli("tenant", "policy", "--tenant", "west")[1]
    code, _, err = cli("tenant", "policy", "--tenant", "west", "--tz", "Mars/Olympus")
    assert code != 0 and "Mars/Olympus" in err
    assert "time zone: Europe/Paris" in cli("tenant", "policy", "--tenant", "west")[1]
    code, _, err = cli("tenant", "create", "moon", "--tz", "Moon/Tranquility")
    assert code != 0 and "Moon/Tranquility" in err
    code, out, _ = cli("report", "recount", "--tenant", "east")
    assert code == 0 and "recounted in Asia/Shanghai" in out
