"""Bringing ledgers to the current format: one tenant at a time, offline, after a backup.

For a tenant: its progress is written to ``<data>/migrations/<tenant>/state.json`` first; the
tenant is taken offline (the running services close its files, the other tenants keep being
served); it is backed up to ``<data>/migrations/<tenant>/backup-format<N>``; every pending step
of ``tracecore.ledger.migrations`` runs; the tenant comes back online if it was online before,
and the state file goes. Killed at any point, the same call picks up where it stopped: the
state file says a migration is under way, a finished backup is kept, a step that committed is
not run again. A step that fails has the backup restored over the tenant, which then stays
offline with the reason. The backup stays afterwards: restoring it (``pharmatrace restore``)
and running the previous release undoes the upgrade.

The operator store (the platform's credentials and audit trail) is migrated the same way, but
only while no process has it open: with the services stopped, or by ``serve --migrate``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracecore import masterdata
from tracecore.errors import FailedPrecondition, NotFound, TraceError
from tracecore.files import fsync_directory
from tracecore.keys import KeySource
from tracecore.ledger import format as ledger_format
from tracecore.ledger import migrations
from tracecore.ledger.alerts import DIRECTORY as ALERTS
from tracecore.ledger.alerts import AlertBook
from tracecore.ledger.answer_trail import DIRECTORY as ANSWERS
from tracecore.ledger.answer_trail import AnswerTrail
from tracecore.ledger.backup import MANIFEST, backup, restore
from tracecore.ledger.env import Env, compact, in_use
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import IDENTITY, LEDGER, OPERATOR_DIR, TENANTS, DataDir

MIGRATIONS = "migrations"
STATE = "state.json"
OPERATOR_WORK = "_operator"
#: How long a migration waits for the running services to close a tenant taken offline.
RELEASE_WAIT_S = 30.0

Say = Callable[[str], None]


class MigrationFailed(TraceError):
    """A step failed; the tenant was restored from its backup and left offline."""

    status = "FAILED_PRECONDITION"


@dataclass(frozen=True)
class Outcome:
    """What a migration of one ledger did."""

    name: str                   # the tenant, or "the operator store"
    from_version: int
    to_version: int
    steps: list[int] = field(default_factory=list)   # the format each step that ran produced
    backup: Path | None = None
    resumed: bool = False       # a killed migration was picked up


def formats(root: Path) -> dict[str, int]:
    """The format version of every tenant's ledger (and ``_operator``'s, when it exists),
    read without changing anything; beside running services too."""
    out: dict[str, int] = {}
    operator = root / OPERATOR_DIR / LEDGER
    if (operator / "data.mdb").is_file():
        out[OPERATOR_WORK] = _read_version(operator, OPERATOR_WORK)
    base = root / TENANTS
    for path in sorted(base.iterdir()) if base.is_dir() else []:
        if (path / IDENTITY).is_file() and (path / LEDGER / "data.mdb").is_file():
            out[path.name] = _read_version(path / LEDGER, path.name)
    return out


def migrate_tenant(root: Path, tenant: str, key_source: KeySource, *,
                   say: Say = lambda _: None, release_wait_s: float = RELEASE_WAIT_S
                   ) -> Outcome:
    """Brings one tenant's ledger to the current format (see the module's docstring);
    ``key_source`` is the installation's key-encryption key (codes are encrypted under a key
    derived from it)."""
    masterdata.tenant_id(tenant)
    tenant_dir = root / TENANTS / tenant
    if not (tenant_dir / IDENTITY).is_file():
        raise NotFound(f"tenant {tenant} does not exist in this data directory", field="tenant")
    work = root / MIGRATIONS / tenant
    state = _load_state(work)
    resumed = state is not None
    if state is None:
        version = _read_version(tenant_dir / LEDGER, tenant)
        _refuse_newer(version, f"tenant {tenant}")
        if version == ledger_format.CURRENT:
            return Outcome(tenant, version, version)
        data = _data_dir(root, key_source)
        state = {"from": version, "was_online": data.offline_reason(tenant) is None}
        _save_state(work, state)
    from_version = int(str(state["from"]))
    data = _data_dir(root, key_source)
    if resumed:
        say(f"tenant {tenant}: resuming the migration from format {from_version}")
    if data.offline_reason(tenant) is None:
        data.set_online(tenant, False, f"migrating its ledger to format {ledger_format.CURRENT}")
    say(f"tenant {tenant}: offline; waiting for the services to close its files")
    _wait_released(data, tenant, release_wait_s, work, state)
    dest = work / f"backup-format{from_version}"
    if not (dest / MANIFEST).is_file():
        _clear_partial_backups(work, dest)
        # Encrypted (age) and signed: it holds the ledger as it was, codes in clear.
        backup(root, tenant, dest, key_source=key_source)
    say(f"tenant {tenant}: backed up to {dest}")
    ran = _run_steps(Ledger(tenant_dir / LEDGER, tenant=tenant, codes=data.code_keys(tenant)),
                     f"tenant {tenant}", say,
                     on_failure=lambda: _restore_tenant(root, tenant, dest, data, key_source))
    # Alerts and partners' answer records name packs: a store written in clear is sealed when
    # opened (a tenant that never answered a partner has no answer trail).
    AlertBook(tenant_dir / ALERTS, tenant=tenant, codes=data.code_keys(tenant)).close()
    stores = [LEDGER, ALERTS]
    if (tenant_dir / ANSWERS).is_dir():
        AnswerTrail(tenant_dir / ANSWERS, tenant=tenant, codes=data.code_keys(tenant)).close()
        stores.append(ANSWERS)
    # The pages the steps freed still hold what they rewrote (codes in clear, before format 3)
    # until reused: only the live pages are kept. Again when resumed: a kill may have come
    # between the steps and this.
    for name in stores:
        compact(tenant_dir / name, tenant)
    if state["was_online"]:
        data.set_online(tenant, True)
        say(f"tenant {tenant}: online")
    (work / STATE).unlink(missing_ok=True)
    return Outcome(tenant, from_version, ledger_format.CURRENT, ran, dest, resumed)


def migrate_operator(root: Path, *, say: Say = lambda _: None) -> Outcome:
    """Brings the operator store to the current format; only while no process has it open."""
    name = "the operator store"
    path = root / OPERATOR_DIR / LEDGER
    if not (path / "data.mdb").is_file():
        return Outcome(name, ledger_format.CURRENT, ledger_format.CURRENT)
    work = root / MIGRATIONS / OPERATOR_WORK
    version = _read_version(path, OPERATOR_WORK)
    _refuse_newer(version, name)
    if version == ledger_format.CURRENT:
        (work / STATE).unlink(missing_ok=True)
        return Outcome(name, version, version)
    if in_use(path):
        raise FailedPrecondition(f"{name} is open in a running server: stop the server, or "
                                 "start it with `serve --migrate`")
    resumed = (work / STATE).is_file()
    _save_state(work, {"from": version})
    dest = work / f"backup-format{version}"
    if not (dest / "done").is_file():
        _clear_partial_backups(work, dest)
        staging = work / f".{dest.name}.partial-{os.getpid()}"
        (staging / LEDGER).mkdir(parents=True)
        env = Env(path, (), owner=OPERATOR_WORK, readonly=True)
        try:
            env.copy_to(staging / LEDGER)
        finally:
            env.close()
        (staging / LEDGER / "lock.mdb").unlink(missing_ok=True)
        (staging / "done").write_text(f"format {version}\n")
        os.rename(staging, dest)
        fsync_directory(work)
    say(f"{name}: backed up to {dest}")

    def put_back() -> None:
        shutil.copyfile(dest / LEDGER / "data.mdb", path / "data.mdb")

    from tracecore.credentials import OPERATOR

    ran = _run_steps(Ledger(path, tenant=OPERATOR), name, say, on_failure=put_back)
    (work / STATE).unlink(missing_ok=True)
    return Outcome(name, version, ledger_format.CURRENT, ran, dest, resumed)


def pending_tenants(root: Path) -> list[str]:
    """Tenants whose ledger is older than the current format, or whose migration was cut."""
    cut = {p.name for p in (root / MIGRATIONS).iterdir()
           if (p / STATE).is_file()} if (root / MIGRATIONS).is_dir() else set()
    return [name for name, version in formats(root).items()
            if name != OPERATOR_WORK and (version < ledger_format.CURRENT or name in cut)]


# -- helpers -------------------------------------------------------------------------------------


def _run_steps(ledger: Ledger, who: str, say: Say, *, on_failure: Callable[[], None]
               ) -> list[int]:
    """Runs the ledger's pending steps and closes it; on a failing step, closes it, calls
    ``on_failure`` (which puts the backup back) and raises MigrationFailed."""
    ran: list[int] = []
    try:
        for step in migrations.pending(ledger_format.version_of(ledger)):
            say(f"{who}: step to format {step.VERSION}: {step.SUMMARY}")
            step.apply(ledger, int(time.time() * 1000))
            ran.append(step.VERSION)
        ledger_format.check(ledger, who)
    except Exception as exc:
        ledger.close()
        on_failure()
        reason = exc.message if isinstance(exc, TraceError) else type(exc).__name__
        raise MigrationFailed(f"{who}: the migration failed ({reason}); the backup taken "
                              "before it was restored") from exc
    ledger.close()
    return ran


def _restore_tenant(root: Path, tenant: str, dest: Path, data: DataDir,
                    key_source: KeySource) -> None:
    # This process wrote the backup moments ago, into the operator-only migrations directory,
    # encrypted to and signed with the installation's key; one taken by an earlier release
    # before a cut migration is not signed.
    restore(dest, root, tenant, force=True, allow_unsigned=True, key_source=key_source)
    data.set_online(tenant, False, "the migration of its ledger failed; restored from the "
                    "backup taken before it")
    (root / MIGRATIONS / tenant / STATE).unlink(missing_ok=True)


def _read_version(path: Path, owner: str) -> int:
    ledger = Ledger(path, tenant=owner, readonly=True)
    try:
        return ledger_format.version_of(ledger)
    finally:
        ledger.close()


def _refuse_newer(version: int, who: str) -> None:
    if version > ledger_format.CURRENT:
        raise ledger_format.FormatMismatch(
            f"{who}: the ledger is format {version}, newer than this release knows "
            f"({ledger_format.CURRENT}); it is left as it is")


def _data_dir(root: Path, key_source: KeySource) -> DataDir:
    # Markers, file locks and the key codes are stored under; no key ring is opened.
    return DataDir(root, key_source)


def _wait_released(data: DataDir, tenant: str, wait_s: float, work: Path,
                   state: dict[str, object]) -> None:
    deadline = time.monotonic() + wait_s
    while not data.released(tenant):
        if time.monotonic() > deadline:
            if state["was_online"]:
                data.set_online(tenant, True)
            (work / STATE).unlink(missing_ok=True)
            raise FailedPrecondition(f"tenant {tenant}: a running process still has its files "
                                     f"open after {wait_s:.0f} s; nothing was changed")
        time.sleep(0.1)


def _clear_partial_backups(work: Path, dest: Path) -> None:
    """Removes what a killed backup left: staging directories and a destination without a
    finished manifest."""
    for partial in work.glob(f".{dest.name}.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)


def _load_state(work: Path) -> dict[str, object] | None:
    try:
        state = json.loads((work / STATE).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        # Written by replacing a complete file: a torn one is not ours.
        raise FailedPrecondition(f"{work / STATE} is not a migration state file") from None
    assert isinstance(state, dict)
    return state


def _save_state(work: Path, state: dict[str, object]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    staged = work / f".{STATE}.{os.getpid()}"
    with staged.open("w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, work / STATE)
    fsync_directory(work)
