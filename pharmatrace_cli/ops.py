"""Operations commands: backup, restore, doctor, audit verify, and tenant maintenance (offline,
online, ledger limit). ``register`` adds them to the `pharmatrace` parser.

backup, restore and doctor work on a data directory directly, beside a running server or
without one (LMDB lets other processes read while the server writes); maintenance asks the
running issuance service, which tells the verification workers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pharmatrace_cli.command import EXIT_ERROR, EXIT_OK, CliError, add_command, endpoints


def register(commands: Any) -> None:
    """Adds backup, restore, doctor, maintenance and audit to the command group."""
    backup = add_command(commands, "backup", "Back up one tenant, online: a consistent, "
                         "compacted copy of its ledger (and scan statistics, alerts), key ring "
                         "and identity, with a manifest of checksums; with the key-encryption "
                         "key, signed and encrypted with age.", _backup, client=False)
    backup.add_argument("dest", help="new directory to write the backup to")
    _data_option(backup)
    backup.add_argument("--ledger-only", action="store_true",
                        help="leave out the scan statistics and alerts (the restored tenant "
                        "starts with no scan history)")
    backup.add_argument("--recipient", action="append", default=[], metavar="AGE_PUBLIC_KEY",
                        help="also encrypt to this age public key (age1..., from age-keygen), "
                        "such as an offline recovery key; repeatable")
    _key_options(backup)

    restore = add_command(commands, "restore", "Restore a tenant from a backup into a stopped "
                          "or new data directory, or into a tenant taken offline; checks the "
                          "checksums and the audit and event chains first.", _restore,
                          client=False, tenant=False)
    restore.add_argument("src", help="backup directory (with manifest.json)")
    _data_option(restore)
    restore.add_argument("--tenant", help="the tenant to restore (default: the backup's; "
                         "must be the backup's)")
    restore.add_argument("--force", action="store_true",
                         help="replace the tenant if the data directory has it (never while a "
                         "running server has its files open)")
    restore.add_argument("--allow-unsigned", action="store_true",
                         help="restore a backup whose manifest is not signed (taken without the "
                         "key-encryption key, or by an older version)")
    restore.add_argument("--identity", action="append", default=[], metavar="FILE",
                         help="an age identity file (age-keygen -o FILE) of one of the backup's "
                         "recipients, to decrypt it without the key-encryption key; repeatable")
    _key_options(restore)

    doctor = add_command(commands, "doctor", "Check a data directory: ledgers open, audit and "
                         "event chains verify, key rings decrypt, counters and pools agree with "
                         "the codes. Exits 1 when anything is wrong.", _doctor, client=False,
                         tenant=False)
    _data_option(doctor)
    doctor.add_argument("--tenant", action="append",
                        help="check only this tenant (repeatable; default: all)")
    doctor.add_argument("--quiet", action="store_true", help="print only what is wrong")
    _key_options(doctor)

    maintenance = commands.add_parser(
        "maintenance", help="Take a tenant offline and back, or raise its ledger's size limit, "
        "on the running services.").add_subparsers(metavar="ACTION")
    offline = add_command(maintenance, "offline", "Take a tenant offline: its calls answer "
                          "UNAVAILABLE on both services and every process closes its files "
                          "(for a restore); the other tenants keep being served.", _offline)
    offline.add_argument("--reason", default="", help="told to callers while offline")
    add_command(maintenance, "online", "Bring a tenant back online.", _online)
    limit = add_command(maintenance, "ledger-limit", "Let a tenant's ledger grow to SIZE "
                        "(e.g. 64GiB) from its next write on, without a restart.", _ledger_limit)
    limit.add_argument("size", help="bytes, or with a unit: 512MiB, 64GiB, 4TiB")

    audit = commands.add_parser("audit", help="The audit trail.").add_subparsers(
        metavar="ACTION")
    averify = add_command(audit, "verify", "Check the hash chains of the audit trail and event "
                          "journal; name the first bad record.", _audit_verify, client=False,
                          tenant=False)
    averify.add_argument("--data", default="./data")
    averify.add_argument("--tenant", help="one tenant (default: all)")
    _key_options(averify)
    heads = add_command(audit, "heads", "Print each tenant's sealed chain heads as JSON lines, "
                        "for an outside party to keep: a later ledger whose records at those "
                        "positions hash differently was rewritten.", _audit_heads, client=False,
                        tenant=False)
    _data_option(heads)
    heads.add_argument("--tenant", help="one tenant (default: all)")


def _data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="./data", help="data directory (default ./data)")


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dev", action="store_true",
                        help="the public development key passphrase, as `serve --dev`")


def _key_source(args: argparse.Namespace) -> Any:
    """The key source `serve` would use, or None (with a note) when none is configured."""
    from tracecore.errors import TraceError
    from tracecore.keys import KEY_FILE_ENV, PASSPHRASE_ENV, KeySource

    if args.dev:
        return KeySource.dev()
    if not os.environ.get(PASSPHRASE_ENV) and not os.environ.get(KEY_FILE_ENV):
        return None
    try:
        return KeySource.from_env()
    except TraceError as exc:
        raise CliError(str(exc)) from exc


# -- backup, restore, doctor -----------------------------------------------------------------


def _backup(args: argparse.Namespace) -> int:
    from tracecore.errors import TraceError
    from tracecore.ledger import backup_cipher
    from tracecore.ledger.backup import backup

    keys = _key_source(args)
    try:
        recipients = [backup_cipher.recipient(text) for text in args.recipient]
        manifest = backup(Path(args.data), args.tenant, Path(args.dest),
                          ledger_only=args.ledger_only, key_source=keys, recipients=recipients)
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    if keys is None:
        print("warning: the backup is NOT signed and NOT encrypted (no key-encryption key "
              "configured: set PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE, or pass "
              "--dev); it holds every serial in clear, and restore refuses it without "
              "--allow-unsigned", file=sys.stderr)
    size = sum(int(f["bytes"]) for f in manifest.files.values())
    print(f"tenant {manifest.tenant} backed up to {args.dest}: {manifest.codes:,} codes, events "
          f"up to #{manifest.last_event_seq}, audit up to #{manifest.audit_seq}, "
          f"{len(manifest.files)} files, {size:,} bytes")
    if not manifest.chains_intact:
        print("pharmatrace: the audit trail or event journal of the copy does NOT verify; the "
              "backup is kept, but restore will refuse it (run `pharmatrace doctor`)",
              file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    from tracecore.errors import TraceError
    from tracecore.ledger import backup_cipher
    from tracecore.ledger.backup import restore

    keys = _key_source(args)
    try:
        identities = [i for path in args.identity for i in backup_cipher.identities_in(Path(path))]
        done = restore(Path(args.src), Path(args.data), args.tenant, force=args.force,
                       key_source=keys, allow_unsigned=args.allow_unsigned,
                       identities=identities)
    except TraceError as exc:
        raise CliError(str(exc)) from exc
    m = done.manifest
    print(f"tenant {m.tenant} {'replaced' if done.replaced else 'restored'} from {args.src} "
          f"(backup of {_when(m.created_at_ms)}): {m.codes:,} codes, events up to "
          f"#{m.last_event_seq}, audit up to #{m.audit_seq}; chains and checksums verified")
    print(f"warning: codes of tenant {m.tenant} minted after this backup "
          f"({_when(m.created_at_ms)}) are not in it and now verify as UNKNOWN; so are their "
          "events and audit records", file=sys.stderr)
    if not done.keys_checked:
        print("note: key ring not checked (no key-encryption key configured: set "
              "PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE, or pass --dev)",
              file=sys.stderr)
    if done.offline:
        print(f"tenant {m.tenant} stays offline: `pharmatrace maintenance online --tenant "
              f"{m.tenant}` brings it back")
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from tracecore.ledger.doctor import Level, examine, problems

    findings = examine(Path(args.data), _key_source(args), args.tenant or ())
    for finding in findings:
        if not args.quiet or finding.level is not Level.OK:
            print(finding)
    wrong = problems(findings)
    tenants = len({f.tenant for f in findings})
    print(f"doctor: {tenants} checked, {len(wrong)} problem{'s' if len(wrong) != 1 else ''}",
          file=sys.stderr)
    return EXIT_ERROR if wrong else EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    from tracecore.keys import KeySource
    from tracecore.ledger.chain import ChainCheck, check_chains
    from tracecore.ledger.tenants import LEDGER, OPERATOR_DIR, DataDir

    # A tenant's chains are stored encrypted: they are walked only with the key-encryption key.
    keys = _key_source(args)
    data = DataDir(Path(args.data), keys or KeySource.dev(), readonly=True)
    checks: list[tuple[str, ChainCheck]] = []
    unchecked = []
    for name, ledger, txn in _each_ledger(data, args.tenant):
        if keys is None:
            unchecked.append(name)
        else:
            checks += [(name, check) for check in check_chains(txn, ledger.db, ledger.codes)]
    if unchecked:
        print(f"pharmatrace: not checked (their records are encrypted; give the key-encryption "
              f"key: --dev, PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE): "
              f"{', '.join(unchecked)}", file=sys.stderr)
    if not args.tenant and (Path(args.data) / OPERATOR_DIR / LEDGER / "data.mdb").exists():
        operator = data.operator().ledger
        with operator.env.read() as txn:
            checks += [("operator", check)
                       for check in check_chains(txn, operator.db, None, events=False)]
        data.close()
    for owner, check in checks:
        print(f"{owner}: {check.name}: {check.summary}")
    return EXIT_OK if all(check.intact for _, check in checks) and not unchecked else EXIT_ERROR


def _audit_heads(args: argparse.Namespace) -> int:
    import json

    from tracecore.keys import KeySource
    from tracecore.ledger.chain import read_seal
    from tracecore.ledger.tenants import DataDir

    data = DataDir(Path(args.data), KeySource.dev(), readonly=True)  # no key ring is opened
    unsealed = []
    for name, ledger, txn in _each_ledger(data, args.tenant):
        seal = read_seal(txn, ledger.db)
        if seal is None:
            unsealed.append(name)
        else:
            print(json.dumps(seal.exported(name), sort_keys=True))
    if unsealed:
        print(f"pharmatrace: not sealed yet (a running server seals them): "
              f"{', '.join(unsealed)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _each_ledger(data: Any, tenant: str | None) -> Iterator[tuple[str, Any, Any]]:
    """(name, ledger, read transaction) of ``tenant``, or of every tenant, each closed after."""
    from tracecore.errors import TraceError

    for name in [tenant] if tenant else data.names():
        try:
            ledger = data.open_ledger(name)
        except TraceError as exc:
            raise CliError(str(exc)) from exc
        try:
            with ledger.env.read() as txn:
                yield name, ledger, txn
        finally:
            ledger.close()


# -- maintenance -----------------------------------------------------------------------------


def _offline(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    response = endpoints(args).admin().SetTenantOnline(
        pb.SetTenantOnlineRequest(tenant=args.tenant, online=False, reason=args.reason))
    if response.released:
        print(f"tenant {args.tenant} is offline; every process has closed its files")
        return EXIT_OK
    print(f"tenant {args.tenant} is offline, but a process still has its files open: wait a "
          "moment before a restore (restore refuses while they are open)")
    return EXIT_ERROR


def _online(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    endpoints(args).admin().SetTenantOnline(
        pb.SetTenantOnlineRequest(tenant=args.tenant, online=True))
    print(f"tenant {args.tenant} is online")
    return EXIT_OK


def _ledger_limit(args: argparse.Namespace) -> int:
    from pharmatrace.v1 import admin_pb2 as pb

    from pharmatrace_cli.config import parse_size

    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    response = endpoints(args).admin().SetLedgerLimit(
        pb.SetLedgerLimitRequest(tenant=args.tenant, max_map_size=size))
    print(f"tenant {args.tenant}: ledger may grow to {response.max_map_size:,} bytes "
          f"(mapped {response.map_size:,}, in use {response.used_bytes:,})")
    return EXIT_OK


def _when(ms: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
