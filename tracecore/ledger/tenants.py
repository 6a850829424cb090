"""The data directory: one private space per tenant (ledger, key ring, identity), opened lazily.

A tenant is taken offline for maintenance (a restore, a repair) by a marker file in its
directory. Every process notices it within ``_MARKER_RECHECK_S``, answers the tenant's calls
Unavailable and closes the tenant's files, so that they can be replaced; the other tenants are
not touched.

A tenant whose writing another node took over (`tenant promote`, `tenant move`) is marked as
followed, beside its directory: the writer closes it and refuses to open it again, and its copy
follows the new writer's stream instead (``replica_svc``); readers are not concerned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore import masterdata
from tracecore.credentials import OPERATOR
from tracecore.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    KeyRingError,
    LedgerCorrupt,
    NotFound,
    TraceError,
    Unavailable,
)
from tracecore.keys import KeyRing, KeySource
from tracecore.ledger import format as ledger_format
from tracecore.ledger.access import Access
from tracecore.ledger.alerts import DIRECTORY as ALERTS
from tracecore.ledger.alerts import AlertBook
from tracecore.ledger.answer_trail import DIRECTORY as ANSWERS
from tracecore.ledger.code_keys import PURPOSE as CODE_KEYS_PURPOSE
from tracecore.ledger.code_keys import CodeKeys
from tracecore.ledger.env import DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE, in_use
from tracecore.ledger.epcis_rest import DIRECTORY as EPCIS_REST
from tracecore.ledger.observations import Observations
from tracecore.ledger.sscc_pools import SsccPools
from tracecore.ledger.store import Ledger

log = logging.getLogger("pharmatrace.tenants")

TENANTS = "tenants"
LEDGER = "ledger"
KEYRING = "keyring.bin"
IDENTITY = "tenant.pb"
OBSERVATIONS = "observations"
#: The maintenance marker: while this file is in a tenant's directory, the tenant is offline.
OFFLINE = "offline"
#: Beside a tenant's directory (so that a copy replaced by a snapshot keeps it): while it is
#: there, this node's writer refuses the tenant with the reason it holds.
FOLLOWED = ".followed-{}"
OPERATOR_DIR = "operator"
MAX_OFFLINE_REASON = 200
#: Readers look for a rotated or revoked key at most this often.
_KEYRING_RECHECK_S = 1.0
#: Every process looks for the maintenance marker of an opened tenant at most this often.
_MARKER_RECHECK_S = 0.25
#: A tenant whose files could not be opened is tried again after this long or once its files
#: change, not on every call (each try decrypts the key ring: scrypt, deliberately slow).
_BROKEN_RETRY_S = 5.0

#: Called with a tenant's name and directory when this process closes it (it went offline).
CloseListener = Callable[[str, Path], None]


@dataclass
class Tenant:
    """One enterprise's opened space."""

    name: str
    path: Path
    ledger: Ledger
    keys: KeyRing
    _keys_stamp: int = field(default=0, repr=False)
    _keys_checked: float = field(default=0.0, repr=False)
    _marker_checked: float = field(default=0.0, repr=False)

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
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
    ) -> None:
        self.root = root
        self.readonly = readonly
        self._key_source = key_source
        self._codes_secret: bytes | None = None
        self._max_map_size = max_map_size
        self._map_size = min(map_size, max_map_size)
        self._limits: dict[str, int] = {}
        self._open: dict[str, Tenant] = {}
        self._broken: dict[str, tuple[float, object, TraceError]] = {}
        self._listeners: list[CloseListener] = []
        self._operator: Ledger | None = None
        self._lock = threading.Lock()
        if not readonly:
            (root / TENANTS).mkdir(parents=True, exist_ok=True)

    def derived_key(self, purpose: str) -> bytes:
        """A secret for ``purpose``, derived from the key-encryption key the key rings are
        opened with (``KeySource.derived_key``): scrypt, so callers keep it."""
        return self._key_source.derived_key(purpose)

    def code_keys(self, tenant: str) -> CodeKeys:
        """How ``tenant``'s ledger stores codes (``tracecore.ledger.code_keys``); the secret
        behind it is derived once per data directory."""
        if self._codes_secret is None:
            self._codes_secret = self._key_source.derived_key(CODE_KEYS_PURPOSE)
        return CodeKeys(self._codes_secret, tenant)

    def operator(self) -> Access:
        """The platform's own credentials and audit trail (creating tenants), beside the
        tenants; opened on first use."""
        with self._lock:
            if self._operator is None:
                path = self.root / OPERATOR_DIR / LEDGER
                new = not (path / "data.mdb").exists()
                store = Ledger(path, tenant=OPERATOR, readonly=self.readonly,
                               map_size=self._map_size)
                try:
                    if new:
                        ledger_format.stamp_new(store)
                    ledger_format.check(store, "the operator store")
                except BaseException:
                    store.close()
                    raise
                self._operator = store
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
                ledger = Ledger(staging / LEDGER, tenant=tenant, map_size=self._map_size,
                                codes=self.code_keys(tenant))
                try:
                    ledger_format.stamp_new(ledger)
                finally:
                    ledger.close()
                # Made now, while there is room: a verification opening them on a full disk
                # would have nothing to serve reads from.
                Observations.create(staging / OBSERVATIONS, tenant=tenant)
                AlertBook(staging / ALERTS, tenant=tenant, codes=self.code_keys(tenant)).close()
                record = lpb.TenantRecord(tenant=tenant, name=name, created_at_ms=now_ms)
                (staging / IDENTITY).write_bytes(record.SerializeToString())
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return self.get(tenant)

    def get(self, tenant: str) -> Tenant:
        """The opened tenant; NotFound when there is no such tenant, Unavailable while it is
        offline, and the error naming the file when its files cannot be opened."""
        opened = self._open.get(tenant)
        if opened is not None:
            now = time.monotonic()
            if now - opened._marker_checked >= _MARKER_RECHECK_S:
                opened._marker_checked = now
                if (opened.path / OFFLINE).exists():
                    self._drop(tenant)
                    raise self._offline(tenant)
            if self.readonly:
                self._refresh_keys(opened)
            return opened
        masterdata.tenant_id(tenant)
        with self._lock:
            opened = self._open.get(tenant)
            if opened is None:
                if self.offline_reason(tenant) is not None:
                    raise self._offline(tenant)
                if not self.readonly and (refusal := self.followed(tenant)) is not None:
                    raise FailedPrecondition(refusal)
                broken = self._broken.get(tenant)
                stamp = self._files_stamp(tenant)
                if broken is not None and time.monotonic() < broken[0] and stamp == broken[1]:
                    raise type(broken[2])(broken[2].message, field=broken[2].field)
                try:
                    opened = self._load(tenant)
                except NotFound:
                    raise
                except TraceError as exc:
                    self._broken[tenant] = (time.monotonic() + _BROKEN_RETRY_S, stamp, exc)
                    raise
                self._broken.pop(tenant, None)
                self._open[tenant] = opened
        return opened

    # -- maintenance -------------------------------------------------------------------------

    def offline_reason(self, tenant: str) -> str | None:
        """Why the tenant is offline ("" when no reason was given), or None when it is not."""
        try:
            text = (self.root / TENANTS / tenant / OFFLINE).read_text(errors="replace")
        except FileNotFoundError:
            return None
        return text.strip()[:MAX_OFFLINE_REASON]

    def set_online(self, tenant: str, online: bool, reason: str = "") -> None:
        """Brings a tenant back, or takes it offline: from then on every process answers its
        calls Unavailable and closes its files (this one at once, once calls in progress end;
        the others within ``_MARKER_RECHECK_S``)."""
        path = self._existing(tenant)
        if len(reason) > MAX_OFFLINE_REASON:
            raise InvalidArgument(f"at most {MAX_OFFLINE_REASON} characters", field="reason")
        marker = path / OFFLINE
        if online:
            marker.unlink(missing_ok=True)
            with self._lock:
                self._broken.pop(tenant, None)
        else:
            staged = path / f".{OFFLINE}.{os.getpid()}.tmp"
            staged.write_text(reason + "\n", encoding="utf-8")
            os.replace(staged, marker)
            self._drop(tenant)
        _fsync_directory(path)

    def followed(self, tenant: str) -> str | None:
        """Why this node's writer no longer writes ``tenant``, or None while it does."""
        try:
            return (self.root / TENANTS / FOLLOWED.format(tenant)).read_text().strip()
        except FileNotFoundError:
            return None

    def follow(self, tenant: str, refusal: str) -> None:
        """This node no longer writes ``tenant``: the writer closes it (once calls in progress
        end) and from now on refuses it FailedPrecondition with ``refusal``, while its copy is
        kept current from the new writer's stream by someone else."""
        path = self._existing(tenant)
        marker = path.parent / FOLLOWED.format(tenant)
        staged = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
        staged.write_text(refusal + "\n", encoding="utf-8")
        os.replace(staged, marker)
        _fsync_directory(path.parent)
        self._drop(tenant)

    def unfollow(self, tenant: str) -> None:
        """This node writes ``tenant`` again (its writing was moved back here)."""
        path = self._existing(tenant)
        (path.parent / FOLLOWED.format(tenant)).unlink(missing_ok=True)
        _fsync_directory(path.parent)

    def released(self, tenant: str) -> bool:
        """Whether no process has any of the tenant's LMDB environments (ledger, scan
        statistics, alerts, answer trail, EPCIS REST store) open any more. Only meaningful in a
        process that has closed them itself (see ``env.in_use``)."""
        path = self._existing(tenant)
        return not any(in_use(path / name)
                       for name in (LEDGER, OBSERVATIONS, ALERTS, ANSWERS, EPCIS_REST))

    def sweep(self) -> list[str]:
        """Closes every opened tenant that was taken offline; returns their names."""
        gone = [name for name, t in list(self._open.items()) if (t.path / OFFLINE).exists()]
        for name in gone:
            self._drop(name)
        return gone

    def add_close_listener(self, listener: CloseListener) -> None:
        """``listener(tenant, directory)`` runs when this process closes a tenant that went
        offline, before its ledger closes: whoever opened more of its files closes them."""
        self._listeners.append(listener)

    def set_ledger_limit(self, tenant: str, max_map_size: int) -> tuple[int, int, int]:
        """The size the tenant's ledger may grow to, from its next write on; returns (map size,
        new limit, bytes in use). Lasts until the process ends."""
        if max_map_size <= 0:
            raise InvalidArgument("must be a positive number of bytes", field="max_map_size")
        self._existing(tenant)
        self._limits[tenant] = max_map_size
        env = self.get(tenant).ledger.env
        limit = env.set_max_map_size(max_map_size)
        return env.map_size, limit, env.used_bytes()

    def check_all(self) -> list[tuple[str, str]]:
        """Opens every tenant; (tenant, problem) for each that cannot be served. Offline
        tenants are not opened and not a problem."""
        base = self.root / TENANTS
        problems: list[tuple[str, str]] = []
        for path in sorted(base.iterdir()) if base.is_dir() else []:
            if path.name.startswith(".") or not path.is_dir():
                continue
            if not (path / IDENTITY).is_file():
                problems.append((path.name, f"{IDENTITY} is missing: the tenant is not served"))
                continue
            if self.offline_reason(path.name) is not None or (
                    not self.readonly and self.followed(path.name) is not None):
                continue
            try:
                self.get(path.name)
            except TraceError as exc:
                problems.append((path.name, exc.message))
        return problems

    def open_ledger(self, tenant: str) -> Ledger:
        """A tenant's ledger alone, without its key ring (checks, backups); the caller closes it."""
        masterdata.tenant_id(tenant)
        path = self.root / TENANTS / tenant
        if not (path / IDENTITY).is_file():
            raise NotFound(f"tenant {tenant} does not exist", field="tenant")
        return Ledger(path / LEDGER, tenant=tenant, readonly=self.readonly,
                      map_size=self._map_size, codes=self.code_keys(tenant))

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

    def _existing(self, tenant: str) -> Path:
        masterdata.tenant_id(tenant)
        path = self.root / TENANTS / tenant
        if not (path / IDENTITY).is_file():
            raise NotFound(f"tenant {tenant} does not exist", field="tenant")
        return path

    def _files_stamp(self, tenant: str) -> object:
        """Changes when the tenant's directory, key ring or ledger file is replaced or changed:
        a damaged tenant is tried again at once when an operator fixes or restores it."""
        path = self.root / TENANTS / tenant
        stamps: list[tuple[int, int, int] | None] = []
        for file in (path, path / KEYRING, path / LEDGER / "data.mdb"):
            try:
                info = file.stat()
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _offline(self, tenant: str) -> Unavailable:
        reason = self.offline_reason(tenant)
        return Unavailable(f"tenant {tenant} is offline for maintenance"
                           + (f": {reason}" if reason else ""))

    def _drop(self, tenant: str) -> None:
        """Closes an opened tenant (after its listeners); calls in progress end first."""
        with self._lock:
            opened = self._open.pop(tenant, None)
        if opened is None:
            return
        for listener in list(self._listeners):
            try:
                listener(tenant, opened.path)
            except Exception:  # one listener failing must not keep the ledger open
                log.exception("closing tenant %s: a listener failed", tenant)
        opened.ledger.close()
        log.info("tenant %s closed", tenant)

    def _load(self, tenant: str) -> Tenant:
        path = self._existing(tenant)
        try:
            keys = KeyRing.load(path / KEYRING, self._key_source)
        except KeyRingError as exc:
            raise KeyRingError(f"tenant {tenant}: {KEYRING}: {exc.message}") from exc
        if not (path / LEDGER / "data.mdb").is_file():
            # Never create an empty ledger in its place: every code would look counterfeit.
            raise LedgerCorrupt(f"tenant {tenant}: {LEDGER}/data.mdb is missing")
        limit = self._limits.get(tenant, self._max_map_size)
        try:
            ledger = Ledger(path / LEDGER, tenant=tenant, readonly=self.readonly,
                            map_size=min(self._map_size, limit), codes=self.code_keys(tenant))
        except TraceError as exc:
            raise type(exc)(f"tenant {tenant}: {LEDGER}: {exc.message}") from exc
        try:
            ledger_format.check(ledger, f"tenant {tenant}")
            if not self.readonly:
                SsccPools(ledger).seal_old()
        except BaseException:
            ledger.close()
            raise
        ledger.env.set_max_map_size(limit)
        stamp = (path / KEYRING).stat().st_mtime_ns
        return Tenant(tenant, path, ledger, keys, stamp, time.monotonic(), time.monotonic())

    def _refresh_keys(self, tenant: Tenant) -> None:
        now = time.monotonic()
        if now - tenant._keys_checked < _KEYRING_RECHECK_S:
            return
        tenant._keys_checked = now
        stamp = tenant.keyring_path.stat().st_mtime_ns
        if stamp != tenant._keys_stamp:
            tenant.keys = KeyRing.load(tenant.keyring_path, self._key_source)
            tenant._keys_stamp = stamp


def _fsync_directory(directory: Path) -> None:
    """Makes a new, renamed or removed entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
