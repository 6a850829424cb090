"""The front door over TLS, with the certificate and key the gRPC ports use."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tracerpc.certs import init_dev_pki, load_tls_files
from verify_svc.workers import WorkerConfig, WorkerPool


def test_the_front_door_speaks_tls_with_the_grpc_certificate(tmp_path: Path) -> None:
    """With --tls-cert and --tls-key, the front door answers https:// under that certificate,
    and a plaintext request gets no answer."""
    pki = init_dev_pki(tmp_path / "pki")
    data = tmp_path / "data"
    data.mkdir()
    pool = WorkerPool(WorkerConfig(
        data, "127.0.0.1", 0, dev_keys=True, tls=load_tls_files(pki.server, pki.server_key, None),
        grace_s=1.0, authenticate=False, http_port=0,
        http_tls=(pki.server, pki.server_key)), workers=1)
    pool.start()
    try:
        trust = ssl.create_default_context(cafile=pki.ca)
        answer = httpx.get(f"https://127.0.0.1:{pool.http_port}/healthz", verify=trust,
                           timeout=30)
        assert answer.status_code == 200 and answer.text == "ok\n"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{pool.http_port}/healthz", timeout=10)
    finally:
        pool.stop(1.0)
