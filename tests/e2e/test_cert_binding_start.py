"""A data directory holding a certificate binding by subject CN alone: `serve` with mutual TLS
refuses to start, naming the binding and how to bind the certificate again."""

from __future__ import annotations

import os
from pathlib import Path

from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import ledger_pb2 as lpb

from tests.e2e.conftest import run_cli
from tracecore.clock import now_ms
from tracecore.keys import KeySource
from tracecore.ledger.tenants import DataDir
from tracerpc.certs import init_dev_pki


def _bind_by_cn(data: Path, tenant: str, cn: str) -> None:
    """A binding as earlier releases made it: the CN is the key, no certificate pinned."""
    directory = DataDir(data, KeySource.dev())
    try:
        ledger = directory.create(tenant, "Acme", now_ms()).ledger
        record = lpb.CredentialRecord(credential=apb.Credential(
            credential_id=f"cert-{cn}", role=apb.ROLE_LINE, certificate_cn=cn))

        def write(txn):  # type: ignore[no-untyped-def]
            txn.put(f"cert-{cn}".encode(), record.SerializeToString(),
                    db=ledger.db["credentials"])
            txn.put(cn.encode(), f"cert-{cn}".encode(), db=ledger.db["cert_bindings"])

        ledger.env.write(write)
    finally:
        directory.close()


def test_serve_with_client_ca_refuses_cn_only_bindings_and_says_how_to_rebind(
        tmp_path: Path) -> None:
    """`serve --client-ca` over a tenant with a CN-only binding exits with an error naming the
    tenant, the credential and the CN, and the way to bind the certificate again."""
    pki = init_dev_pki(tmp_path / "pki", clients=("line-1",))
    data = tmp_path / "data"
    _bind_by_cn(data, "acme", "line-1")
    served = run_cli(["serve", "--dev", "--data", str(data), "--tls-cert", str(pki.server),
                      "--tls-key", str(pki.server_key), "--client-ca", str(pki.ca),
                      "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0",
                      "--http-port", "0", "--workers", "1"],
                     env=dict(os.environ), cwd=tmp_path)
    output = served.stdout + served.stderr
    assert served.returncode != 0, output
    assert "acme: cert-line-1 (CN line-1)" in output
    assert "certificate_pem" in output and "revoke" in output
