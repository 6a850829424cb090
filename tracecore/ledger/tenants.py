"""The data directory: one private space per tenant (ledger, key ring, identity), opened lazily."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata
from tracecore.credentials import OPERATOR
from tracecore.errors import AlreadyExists, KeyRingError, NotFound, TraceError
from tracecore.keys import KeyRing, KeySource
from tracecore.ledger.access import Access
from tracecore.ledger.env import DEFAULT_MAP_SIZE
from tracecore.ledger.store import Ledger

TENANTS = "tenants"
LEDGER = "ledger"
KEYRING = "keyring.bin"
IDENTITY = "tenant.pb"
OPERATOR_DIR = "operator"
#: Readers look for a rotated or revoked key at most this often.
_KEYRING_RECHECK_S = 1.0


@dataclass
class Tenant:
    """One enterprise's opened space."""

    name: str
    path: Path
    ledger: Ledger
    keys: KeyRing
    _keys_stamp: int = field(default=0, repr=False)
    _keys_checked: float = field(default=0.0, repr=False)

    @property
    def keyring_path(self) -> Path:
        return self.path / KEYRING

    @property
    def access(self) -> Access:
        """Its credentials and audit trail."""
        return Access(self.ledger)


class DataDir:
    """``root/tenants/<tenant>/`` for every tenant; the writer creates them, readers open them."""

    def __init__(
        self,
        root: Path,
        key_source: KeySource,
        *,
        readonly: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> None:
        self.root = root
        self.readonly = readonly
        self._key_source = key_source
        self._map_size = map_size
        self._open: dict[str, Tenant] = {}
        self._operator: Ledger | None = None
        self._lock = threading.Lock()
        if not readonly:
            (root / TENANTS).mkdir(parents=True, exist_ok=True)

    def operator(self) -> Access:
        """The platform's own credentials and audit trail (creating tenants), beside the
        tenants; opened on first use."""
        with self._lock:
            if self._operator is None:
                self._operator = Ledger(self.root / OPERATOR_DIR / LEDGER, tenant=OPERATOR,
                                        readonly=self.readonly, map_size=self._map_size)
        return Access(self._operator)

    def names(self) -> list[str]:
        base = self.root / TENANTS
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / IDENTITY).is_file())

    def create(self, tenant: str, name: str, now_ms: int) -> Tenant:
        """A new tenant: key ring and empty ledger built aside, then moved into place at once."""
        masterdata.tenant_id(tenant)
        final = self.root / TENANTS / tenant
        with self._lock:
            if final.exists():
                raise AlreadyExists(f"tenant {tenant} already exists", field="tenant")
            staging = self.root / TENANTS / f".new-{tenant}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                KeyRing.generate().save(staging / KEYRING, self._key_source)
                Ledger(staging / LEDGER, tenant=tenant, map_size=self._map_size).close()
                record = lpb.TenantRecord(tenant=tenant, name=name, created_at_ms=now_ms)
                (staging / IDENTITY).write_bytes(record.SerializeToString())
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return self.get(tenant)

    def get(self, tenant: str) -> Tenant:
        """The opened tenant; NotFound when there is no such tenant."""
        opened = self._open.get(tenant)
        if opened is not None:
            if self.readonly:
                self._refresh_keys(opened)
            return opened
        masterdata.tenant_id(tenant)
        with self._lock:
            opened = self._open.get(tenant)
            if opened is None:
                opened = self._open[tenant] = self._load(tenant)
        return opened

    def open_ledger(self, tenant: str) -> Ledger:
        """A tenant's ledger alone, without its key ring (checks, backups); the caller closes it."""
        masterdata.tenant_id(tenant)
        path = self.root / TENANTS / tenant
        if not (path / IDENTITY).is_file():
            raise NotFound(f"tenant {tenant} does not exist", field="tenant")
        return Ledger(path / LEDGER, tenant=tenant, readonly=self.readonly,
                      map_size=self._map_size)

    def save_keys(self, tenant: Tenant) -> None:
        """Persists the tenant's key ring after a rotation, retirement or revocation."""
        tenant.keys.save(tenant.keyring_path, self._key_source)

    def close(self) -> None:
        with self._lock:
            for tenant in self._open.values():
                tenant.ledger.close()
            self._open.clear()
            if self._operator is not None:
                self._operator.close()
                self._operator = None

    def _load(self, tenant: str) -> Tenant:
        path = self.root / TENANTS / tenant
        if not (path / IDENTITY).is_file():
            raise NotFound(f"tenant {tenant} does not exist", field="tenant")
        try:
            keys = KeyRing.load(path / KEYRING, self._key_source)
        except KeyRingError as exc:
            raise KeyRingError(f"tenant {tenant}: {KEYRING}: {exc.message}") from exc
        try:
            ledger = Ledger(path / LEDGER, tenant=tenant, readonly=self.readonly,
                            map_size=self._map_size)
        except TraceError as exc:
            raise type(exc)(f"tenant {tenant}: {LEDGER}: {exc.message}") from exc
        stamp = (path / KEYRING).stat().st_mtime_ns
        return Tenant(tenant, path, ledger, keys, stamp, time.monotonic())

    def _refresh_keys(self, tenant: Tenant) -> None:
        now = time.monotonic()
        if now - tenant._keys_checked < _KEYRING_RECHECK_S:
            return
        tenant._keys_checked = now
        stamp = tenant.keyring_path.stat().st_mtime_ns
        if stamp != tenant._keys_stamp:
            tenant.keys = KeyRing.load(tenant.keyring_path, self._key_source)
            tenant._keys_stamp = stamp
