"""The commands of the hardening: binding a client certificate by its file, and the tenant's
dispense-elsewhere policy beside the label-replacement one."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.e2e.conftest import Cli
from tracerpc.certs import init_dev_pki


def test_certs_bind_pins_the_certificate_file_and_token_list_shows_it(cli: Cli,
                                                                    tmp_path: Path) -> None:
    """`certs bind` prints the new credential (named from the certificate's SHA-256) and says
    what it pinned; a second bind of the same file is refused; `token list` lists it."""
    tenant = f"bind-{uuid.uuid4().hex[:8]}"
    cli.ok("tenant", "create", tenant)
    pki = init_dev_pki(tmp_path / "pki", clients=("line-1",))
    certificate = str(pki.clients[0].certificate)
    bound = cli.ok("certs", "bind", "--tenant", tenant, "--role", "regulator", certificate)
    credential = bound.stdout.strip()
    assert credential.startswith("cert-") and len(credential) == 21
    assert "issued by CN=pharmatrace development CA" in bound.stderr
    again = cli("certs", "bind", "--tenant", tenant, "--role", "regulator", certificate)
    assert again.returncode != 0 and "already bound" in again.stderr
    assert credential in cli.ok("token", "list", "--tenant", tenant).stdout


def test_tenant_policy_sets_only_the_rules_it_is_given(cli: Cli) -> None:
    """`tenant policy --dispense-elsewhere on` leaves label replacement as it was, and the
    other way round; both rules are printed."""
    tenant = f"policy-{uuid.uuid4().hex[:8]}"
    cli.ok("tenant", "create", tenant)
    first = cli.ok("tenant", "policy", "--tenant", tenant, "--label-replacement", "on").stdout
    assert "label replacement: on" in first and "dispense elsewhere: off" in first
    second = cli.ok("tenant", "policy", "--tenant", tenant, "--dispense-elsewhere", "on").stdout
    assert "label replacement: on" in second and "dispense elsewhere: on" in second
