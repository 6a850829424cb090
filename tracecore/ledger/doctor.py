"""`pharmatrace doctor`: checks a data directory without changing it and names what is wrong.

For every tenant: its identity file; its key ring, decrypted with the configured key source; its
ledger: it opens, every code record decodes, every code's status is what its events say (the
journal replayed), the audit trail and the event journal verify, the report counters agree with
a recount of the codes, every pool holds exactly the codes issued under it (none twice, none in
two pools), the density-limit tallies agree with the codes, and every code's signing key is in
the key ring; its other LMDB environments open. The ledger is
read in one transaction, so the doctor can run beside a live server and sees one state of it.
"""

from __future__ import annotations

import enum
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pharmatrace.v1 import ledger_pb2 as lpb

from tracecore.codes import Code, Scheme
from tracecore.errors import LedgerCorrupt, TraceError
from tracecore.keys import KeyRing, KeySource
from tracecore.ledger import format as ledger_format
from tracecore.ledger.chain import (
    SEAL_PURPOSE,
    ChainCheck,
    audit_trail,
    check_chains,
    check_seal,
    event_journal,
    read_seal,
)
from tracecore.ledger.code_keys import OTHER_KEY, CodeKeys
from tracecore.ledger.contents import recount, resolved, stored_all
from tracecore.ledger.counters import Tally
from tracecore.ledger.env import Env, Txn, disk_free
from tracecore.ledger.journal import Journal
from tracecore.ledger.lifecycle import counted
from tracecore.ledger.oversight import RegionTally, stored_regions
from tracecore.ledger.recompute import recomputed
from tracecore.ledger.records import CodeRecord, ref_key, u64
from tracecore.ledger.store import Ledger
from tracecore.ledger.tenants import (
    IDENTITY,
    KEYRING,
    LEDGER,
    OFFLINE,
    OPERATOR_DIR,
    TENANTS,
)
from tracecore.minting import density_slot
from tracecore.status import Status
from tracecore.version import release

#: Examples named per kind of problem; the rest are counted.
EXAMPLES = 3
_POOL_CODE = struct.Struct(">II")
_KEY_ID = struct.Struct(">H")
_COUNT = struct.Struct(">q")
# Counter key layouts of tracecore.ledger.counters: S batch/holder/status/flags, P product/
# region/status. Flow counters (F) are per day and cannot be recounted from the codes.
_S = struct.Struct(">cIIBB")
_P = struct.Struct(">cIIB")


class Level(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "PROBLEM"


@dataclass(frozen=True)
class Finding:
    tenant: str
    check: str
    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.tenant}: {self.check}: {self.level.value}: {self.message}"


def examine(data_root: Path, key_source: KeySource | None,
            tenants: Sequence[str] = ()) -> list[Finding]:
    """Findings for ``tenants`` (default: every tenant, and the operator's audit trail)."""
    base = data_root / TENANTS
    if not base.is_dir():
        return [Finding("-", "data directory", Level.PROBLEM, "it has no tenants directory")]
    names = list(tenants) or sorted(d.name for d in base.iterdir()
                                    if d.is_dir() and not d.name.startswith("."))
    findings: list[Finding] = []
    for name in names:
        findings += examine_tenant(base / name, name, key_source)
    operator = data_root / OPERATOR_DIR / LEDGER
    if not tenants and (operator / "data.mdb").is_file():
        findings += _operator(operator)
    return findings


def examine_tenant(path: Path, name: str, key_source: KeySource | None) -> list[Finding]:
    out = _Report(name)
    if not path.is_dir():
        out.problem("tenant", "no such tenant in this data directory")
        return out.findings
    _identity(path, out)
    reason = _offline_reason(path)
    if reason is not None:
        out.warning("maintenance", "offline" + (f": {reason}" if reason else ""))
    ring = _key_ring(path, key_source, out)
    if not (path / LEDGER / "data.mdb").is_file():
        out.problem("ledger", f"{LEDGER}/data.mdb is missing")
        return out.findings
    try:
        ledger = Ledger(path / LEDGER, tenant=name, readonly=True,
                        codes=CodeKeys.of(key_source, name) if key_source is not None else None)
    except TraceError as exc:
        out.problem("ledger", f"does not open: {exc.message}")
        return out.findings
    try:
        # Records of another format are laid out (and encrypted) otherwise: not read further.
        if _format(ledger, f"tenant {name}", out):
            with ledger.env.read() as txn:
                _check_ledger(ledger, txn, ring, out, readable=key_source is not None)
                if key_source is not None:
                    _check_seal(txn, ledger, key_source, name, out)
        used = ledger.env.used_bytes()
        room = _room_left(path / LEDGER)
        out.ok("ledger", f"opens; {used:,} bytes in use{room}")
    except TraceError as exc:
        out.problem("ledger", f"cannot be read through: {exc.message}")
    finally:
        ledger.close()
    for directory in _companions(path):
        try:
            env = Env(directory, (), owner=name, readonly=True)
        except TraceError as exc:
            out.problem(directory.name, f"does not open: {exc.message}")
            continue
        try:
            out.ok(directory.name, f"opens; {env.used_bytes():,} bytes in use")
        finally:
            env.close()
    return out.findings


def _format(ledger: Ledger, who: str, out: _Report) -> bool:
    """Whether the ledger is of the format this release serves (and reads)."""
    try:
        ledger_format.check(ledger, who)
    except ledger_format.FormatMismatch as exc:
        out.problem("format", exc.message)
        return False
    out.ok("format", f"format {ledger_format.CURRENT}, the one pharmatrace {release()} serves")
    return True


def problems(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.level is Level.PROBLEM]


# -- checks --------------------------------------------------------------------------------------


class _Report:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.findings: list[Finding] = []

    def ok(self, check: str, message: str) -> None:
        self.findings.append(Finding(self.tenant, check, Level.OK, message))

    def warning(self, check: str, message: str) -> None:
        self.findings.append(Finding(self.tenant, check, Level.WARNING, message))

    def problem(self, check: str, message: str) -> None:
        self.findings.append(Finding(self.tenant, check, Level.PROBLEM, message))

    def tally(self, check: str, what: str, examples: list[str], total: int,
              fine: str) -> None:
        if total:
            listed = "; ".join(examples[:EXAMPLES])
            self.problem(check, f"{total:,} {what}" + (f", e.g. {listed}" if listed else ""))
        else:
            self.ok(check, fine)


def _identity(path: Path, out: _Report) -> None:
    try:
        record = lpb.TenantRecord.FromString((path / IDENTITY).read_bytes())
    except FileNotFoundError:
        out.problem("identity", f"{IDENTITY} is missing: the tenant is not served")
        return
    except Exception:  # protobuf's DecodeError and whatever a mangled file raises
        out.problem("identity", f"{IDENTITY} cannot be decoded")
        return
    if record.tenant != out.tenant:
        out.problem("identity", f"{IDENTITY} names tenant {record.tenant!r}")
    else:
        out.ok("identity", f"{record.name!r}")


def _offline_reason(path: Path) -> str | None:
    try:
        return (path / OFFLINE).read_text(errors="replace").strip()
    except FileNotFoundError:
        return None


def _key_ring(path: Path, key_source: KeySource | None, out: _Report) -> KeyRing | None:
    if key_source is None:
        out.warning("key ring", "not checked: no key-encryption key configured (set "
                    "PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE, or pass --dev)")
        return None
    try:
        ring = KeyRing.load(path / KEYRING, key_source)
    except TraceError as exc:
        out.problem("key ring", f"{KEYRING}: {exc.message}")
        return None
    out.ok("key ring", f"{len(ring.keys())} keys, active key {ring.active.key_id}")
    return ring


def _check_seal(txn: Txn, ledger: Ledger, key_source: KeySource, name: str,
                out: _Report) -> None:
    seal = read_seal(txn, ledger.db)
    if seal is None:
        out.warning("seal", "the chain heads are not sealed (a ledger of an older version): the "
                    "next running server seals them")
        return
    wrong = check_seal(txn, ledger.db, key_source.derived_key(SEAL_PURPOSE), name, ledger.codes)
    if wrong is not None:
        out.problem("seal", wrong)
    else:
        out.ok("seal", f"chain heads sealed at audit record {seal.audit_seq:,}, event "
               f"{seal.event_seq:,}; records up to them are unchanged")


def _room_left(ledger_dir: Path) -> str:
    """Room left on the filesystem, for the operator deciding on limits and disks."""
    try:
        free, total = disk_free(ledger_dir)
    except OSError:
        return ""
    return f"; {free:,} of {total:,} bytes free on its filesystem"


def _check_ledger(ledger: Ledger, txn: Txn, ring: KeyRing | None, out: _Report, *,
                  readable: bool) -> None:
    if not readable:
        # Codes, events and audit records are stored encrypted under a key derived from the
        # key-encryption key.
        out.warning("codes", "codes, events and audit records not checked: they are encrypted, "
                    "and the key-encryption key was not given (--dev, "
                    "PHARMATRACE_KEY_PASSPHRASE or PHARMATRACE_KEY_FILE)")
        return
    if not _key_opens(ledger, txn):
        # Every check below would report each code and record as broken.
        out.problem("codes at rest", "the key does not open this ledger's codes or records, "
                    f"so they were not checked: {OTHER_KEY}")
        return
    _report_chains(check_chains(txn, ledger.db, ledger.codes), out)
    scan = _scan_codes(ledger, txn, out)
    _check_counters(ledger, txn, scan.tally, out)
    _check_regions(ledger, txn, scan.regions, out)
    _check_contents(ledger, txn, out)
    _check_pools(ledger, txn, scan.per_pool, out)
    _check_minted(ledger, txn, scan.minted, out)
    if ring is not None:
        known = {k.key_id for k in ring}
        unknown = sorted(k for k in scan.key_ids if k not in known)
        out.tally("signing keys", "codes minted under a key missing from the key ring",
                  [f"key {k}: {scan.key_ids[k]:,} codes" for k in unknown],
                  sum(scan.key_ids[k] for k in unknown), "every code's key is in the key ring")


def _key_opens(ledger: Ledger, txn: Txn) -> bool:
    """Whether the key opens what the ledger stores encrypted (the first and last codes' stored
    keys, the first and last records of both chains): False only when none of them does; True
    too when the ledger stores nothing encrypted yet."""
    tried = False
    cursor = txn.cursor(db=ledger.db["codes"])
    for found in (cursor.first(), cursor.last()):
        if found:
            tried = True
            try:
                ledger.codes.plain(bytes(cursor.key()))
            except LedgerCorrupt:
                continue
            return True
    for chain in (audit_trail(ledger.db, ledger.codes), event_journal(ledger.db, ledger.codes)):
        last = chain.last(txn)
        if last:
            tried = True
            if chain.opens(txn, 1) or chain.opens(txn, last):
                return True
    return not tried


@dataclass
class _Scan:
    tally: Tally
    per_pool: Counter[int]
    minted: Counter[bytes]
    key_ids: Counter[int]
    regions: RegionTally


def _scan_codes(ledger: Ledger, txn: Txn, out: _Report) -> _Scan:
    scan = _Scan(Tally(), Counter(), Counter(), Counter(), RegionTally())
    bad: list[str] = []
    total = undecodable = 0
    journal = Journal(ledger)
    disagree: list[str] = []
    disagreeing = 0
    plain = ledger.codes.plain
    for stored, value in txn.cursor(db=ledger.db["codes"]):
        total += 1
        key = stored
        try:
            record = CodeRecord.unpack(value)
            key = plain(bytes(stored))
            code = Code.from_key(key)
        except (struct.error, ValueError, TraceError):
            undecodable += 1
            bad.append(bytes(key)[:40].hex())
            continue
        if record.status is not Status.ISSUED:
            held = resolved(ledger, txn, key, record)
            if counted(record):
                scan.tally.move(None, held)
            scan.regions.move(None, held)  # voided codes too
        if record.foreign:  # minted elsewhere: no pool, no key of ours, not in our density
            continue
        if code.scheme is not Scheme.SSCC:  # an SSCC: from an SSCC pool, tagless, not minted
            scan.per_pool[record.pool_ref] += 1
            slot = density_slot(code.scheme, record.key_id)
            scan.minted[code.product.encode() + _KEY_ID.pack(slot)] += 1
            scan.key_ids[record.key_id] += 1
        told = recomputed(journal, txn, key)
        if told is not record.status:
            disagreeing += 1
            if len(disagree) < EXAMPLES:
                disagree.append(f"{code.text()} is stored {record.status.name}, its events "
                                f"say {told.name}")
    out.tally("codes", "code records cannot be decoded", bad, undecodable,
              f"{total:,} code records decode")
    out.tally("statuses", "codes whose stored status is not what their events say",
              disagree, disagreeing, "every code's status is what its events say")
    return scan


def _check_counters(ledger: Ledger, txn: Txn, tally: Tally, out: _Report) -> None:
    recounted = {k: v for k, v in tally.expand().items() if v}
    stored: dict[bytes, int] = {}
    for key, value in txn.cursor(db=ledger.db["counters"]):
        key = bytes(key)
        if key[:1] in (b"S", b"P"):
            stored[key] = _COUNT.unpack(value)[0]
    differ = sorted(k for k in recounted.keys() | stored.keys()
                    if recounted.get(k, 0) != stored.get(k, 0))
    out.tally("counters", "report counters disagree with a recount of the codes",
              [f"{_describe(k)}: stored {stored.get(k, 0):,}, recounted {recounted.get(k, 0):,}"
               for k in differ], len(differ),
              f"{len(stored):,} location and region counters agree with the codes")


def _check_regions(ledger: Ledger, txn: Txn, regions: RegionTally, out: _Report) -> None:
    recounted = {fields: n for fields, n in regions.units.items() if n}
    stored = stored_regions(txn, ledger.db["batch_regions"])
    differ = sorted(k for k in recounted.keys() | stored.keys()
                    if recounted.get(k, 0) != stored.get(k, 0))
    out.tally("batch regions", "units per batch and region disagree with a recount of the codes",
              [f"batch {batch} in region {region or 'none'}, {Status(status).name}: stored "
               f"{stored.get((batch, region, status), 0):,}, recounted "
               f"{recounted.get((batch, region, status), 0):,}"
               for batch, region, status in differ], len(differ),
              f"{len(stored):,} units per batch and region agree with the codes")


def _check_contents(ledger: Ledger, txn: Txn, out: _Report) -> None:
    recounted = {container: {row: n for row, n in rows.items() if n}
                 for container, rows in recount(ledger, txn).items()}
    stored = stored_all(txn, ledger.db["contents"])
    differ = sorted(k for k in recounted.keys() | stored.keys()
                    if recounted.get(k, {}) != stored.get(k, {}))
    plain = ledger.codes.plain
    out.tally("contents", "containers' contents tallies disagree with what is packed in them",
              [f"{Code.from_key(plain(k)).text()}: stored {sum(stored.get(k, {}).values()):,} "
               f"packs, recounted {sum(recounted.get(k, {}).values()):,}" for k in differ],
              len(differ), f"{len(stored):,} containers' contents tallies agree with the codes")


def _check_pools(ledger: Ledger, txn: Txn, per_pool: Counter[int], out: _Report) -> None:
    codes_db = ledger.db["codes"]
    entries: Counter[int] = Counter()
    wrong: list[str] = []
    wrong_total = 0
    position_of: dict[int, int] = {}
    for key, code_key in txn.cursor(db=ledger.db["pool_codes"]):
        pool_ref, position = _POOL_CODE.unpack(key)
        entries[pool_ref] += 1
        expected = position_of.get(pool_ref, 0)
        position_of[pool_ref] = position + 1
        data = txn.get(bytes(code_key), db=codes_db)
        problem = None
        if position != expected:
            problem = f"positions jump from {expected} to {position}"
        elif data is None:
            problem = "code missing from the ledger"
        elif CodeRecord.unpack(data).pool_ref != pool_ref:
            problem = f"code belongs to pool #{CodeRecord.unpack(data).pool_ref}"
        if problem is not None:
            wrong_total += 1
            wrong.append(f"pool #{pool_ref} position {position}: {problem}")
    out.tally("pool codes", "pool entries are wrong", wrong, wrong_total,
              f"{sum(entries.values()):,} pool entries, each its pool's own code")

    mismatched: list[str] = []
    pools = 0
    seen_refs: set[int] = set()
    for request_id, data in txn.cursor(db=ledger.db["pools"]):
        pools += 1
        record = lpb.PoolRecord.FromString(bytes(data))
        pool, ref = record.pool, record.pool_ref
        seen_refs.add(ref)
        back = txn.get(ref_key(ref), db=ledger.db["pool_refs"])
        name = bytes(request_id).decode(errors="replace")
        if back is None or bytes(back) != bytes(request_id):
            mismatched.append(f"{name}: pool #{ref} does not map back to it")
        if not pool.issued == entries[ref] == per_pool[ref] or pool.issued > pool.count:
            mismatched.append(f"{name}: issued {pool.issued:,} of {pool.count:,}, "
                              f"{entries[ref]:,} in the pool, {per_pool[ref]:,} codes")
    stray = sorted(ref for ref in per_pool if ref and ref not in seen_refs)
    mismatched += [f"{per_pool[ref]:,} codes of pool #{ref}, which does not exist"
                   for ref in stray]
    out.tally("pools", "pools disagree with their codes (a code twice, or in two pools)",
              mismatched, len(mismatched),
              f"{pools:,} pools: issued counts match their codes, no code twice")


def _check_minted(ledger: Ledger, txn: Txn, minted: Counter[bytes], out: _Report) -> None:
    stored = {bytes(k): u64(v) for k, v in txn.cursor(db=ledger.db["minted"])}
    differ = sorted(k for k in stored.keys() | minted.keys() if stored.get(k, 0) != minted[k])
    out.tally("density tallies", "codes-minted tallies disagree with the codes",
              [f"{k[:-2].decode(errors='replace')} key slot {_KEY_ID.unpack(k[-2:])[0]}: "
               f"stored {stored.get(k, 0):,}, counted {minted[k]:,}" for k in differ],
              len(differ), f"{len(stored):,} codes-minted tallies agree with the codes")


def _operator(path: Path) -> list[Finding]:
    out = _Report("(operator)")
    try:
        ledger = Ledger(path, tenant="_operator", readonly=True)
    except TraceError as exc:
        out.problem("ledger", f"does not open: {exc.message}")
        return out.findings
    try:
        _format(ledger, "the operator store", out)
        with ledger.env.read() as txn:
            checks = check_chains(txn, ledger.db, None, events=False)
    finally:
        ledger.close()
    _report_chains(checks, out)
    return out.findings


def _report_chains(checks: list[ChainCheck], out: _Report) -> None:
    for check in checks:
        if check.intact:
            out.ok(check.name, check.summary)
        else:
            out.problem(check.name, check.summary)


def _companions(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir()
                  if d.is_dir() and d.name != LEDGER and not d.name.startswith(".")
                  and (d / "data.mdb").is_file())


def _describe(key: bytes) -> str:
    try:
        if len(key) == _S.size and key[:1] == b"S":
            _, batch, holder, status, flags = _S.unpack(key)
            return (f"batch #{batch} at party #{holder} {Status(status).name}"
                    + (" in transit" if flags else ""))
        if len(key) == _P.size and key[:1] == b"P":
            _, product, region, status = _P.unpack(key)
            return f"product #{product} region {region:06d} {Status(status).name}"
    except ValueError:
        pass
    return key.hex()
