"""The server-level security log: one JSON line per refused call, in ``<data>/security.log``.

Every process of a server appends to it (the issuance process and each verification worker);
a line is written with one ``write`` on a file opened for appending, so lines from several
processes never interleave. It holds what no tenant's audit trail can: refusals that name no
known tenant, and those a read-only verification worker cannot put in a tenant's trail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tracecore.refusals import Refusal

FILE = "security.log"


def append(root: Path, refusal: Refusal, tenant_known: bool) -> None:
    """Adds one refusal; ``tenant_known`` says whether the tenant it names exists here."""
    line = json.dumps({
        "at_ms": refusal.at_ms, "reason": refusal.reason.value, "method": refusal.method,
        "address": refusal.address, "tenant": refusal.tenant, "tenant_known": tenant_known,
        "credential": refusal.credential, "role": refusal.role,
    }, ensure_ascii=False, separators=(",", ":")) + "\n"
    fd = os.open(root / FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(root: Path) -> list[dict[str, object]]:
    """Every line, oldest first."""
    path = root / FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
