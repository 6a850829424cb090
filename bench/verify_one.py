"""One code verified in-process: CPU microseconds a verification, beside the raw parse + tag
check + LMDB get of the same code.

Set-up: a tenant built in-process in a temporary directory (one GS1 product, one batch, a
pharmacy), ``--codes`` packs commissioned. Three cases, each over fresh codes so the scan
statistics grow as they do in a worker between flushes:

- first: a public client's first check of a code that day (``verify_one(code, client=...)``: the
  client-per-day lookup, the scan counted);
- repeat: the same client checking the same codes again (answered from the statistics, not
  counted again);
- supply chain: a party's scan with a region (diversion and clone checks on);
- unary use case: ``usecases.verification.verify`` for a public caller, as a unary Verify
  runs it (the client's tag, the scan context, the verification);
- check page: ``usecases.public_check.check`` through the front door's reads, as a check-page
  view runs it for a public client (a second client: each code was checked once before).

The last two go through a worker's ``Verifiers`` (statistics of their own).

Baseline: ``bench.verify.in_process_rate``'s loop (parse, tag check, LMDB get) over one code
at a time. Figures are CPU time (``time.process_time``), the median of ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pharmatrace.v1 import common_pb2 as cpb

from bench.harness import workdir
from bench.measure import settle
from bench.report import say
from frontdoor.reads import FrontdoorReads
from tracecore.codes import Code, Form, Scan, Scheme, parse_many, parsed_codes, render
from tracecore.credentials import Principal, Role
from tracecore.events import Event, EventKind
from tracecore.keys import KeySource
from tracecore.ledger import lifecycle
from tracecore.ledger.observations import Observations
from tracecore.ledger.store import PoolRequest
from tracecore.ledger.tenants import DataDir
from tracecore.minting import Minter, check_tags
from tracecore.oversight import Checks
from tracecore.scan_clients import client_tag
from tracecore.usecases import public_check
from tracecore.usecases import verification as verify_use_case
from tracecore.verification import ScanContext, Verifier
from verify_svc.verification import Verifiers

GTIN = "09501101530010"
LOT = "L1"
EXPIRES = "2031-01-31"
T0 = 1_772_352_000_000  # 2026-03-01 08:00 UTC
GUANGZHOU = 440106
DEFAULT_CODES = 20_000
DEFAULT_ROUNDS = 5


def build(data: Path, n: int) -> list[str]:
    """A tenant with ``n`` packs commissioned at a pharmacy, and what a scanner reads off
    each (element string with lot and expiry)."""
    directory = DataDir(data, KeySource.dev())
    tenant = directory.create("t", "Bench", T0)
    store = tenant.ledger
    store.register_product(cpb.Product(gtin=GTIN, name="Benchmarkol 10 mg"), T0)
    store.add_batch(cpb.Batch(product=GTIN, lot=LOT, expires_on=EXPIRES,
                              authorised_regions=["44"]), T0)
    store.add_party(cpb.Party(party_id="PHARM", name="Pharmacy", region=str(GUANGZHOU),
                              kind=cpb.PARTY_KIND_PHARMACY), T0)
    key = tenant.keys.active
    serials = Minter(Scheme.GS1, GTIN, key.key_id, key.mac).mint(n)
    store.open_pool(PoolRequest("pool-1", GTIN, LOT, 1, n), key.key_id, T0)
    store.append_pool_codes("pool-1", 0, serials, key.key_id, T0, lambda _: [])
    codes = [Code(Scheme.GS1, GTIN, s) for s in serials]
    for i in range(0, n, 5_000):
        (result,) = lifecycle.apply(store, [lifecycle.Request(
            [Event(EventKind.COMMISSION, tuple(codes[i:i + 5_000]), T0, party_id="PHARM")])], T0)
        assert result.applied
    expiry = EXPIRES[2:4] + EXPIRES[5:7] + EXPIRES[8:10]
    directory.close()
    return [render(Scan(c, LOT, expiry), Form.ELEMENT) for c in codes]


def _per_code_us(each: Callable[[str], object], texts: Sequence[str]) -> float:
    """CPU microseconds per call of ``each`` over ``texts``."""
    started = time.process_time()
    for text in texts:
        each(text)
    return (time.process_time() - started) / len(texts) * 1e6


def run(codes: int = DEFAULT_CODES, rounds: int = DEFAULT_ROUNDS, keep: bool = False
        ) -> dict[str, float]:
    """Median CPU µs a code of each case and of the baseline."""
    with workdir("verify-one", keep) as tmp:
        say(f"verify-one: commissioning {codes:,} packs in-process ...")
        texts = build(tmp / "data", codes)
        # Opened as a verification worker opens it: read-only.
        directory = DataDir(tmp / "data", KeySource.dev(), readonly=True)
        try:
            tenant = directory.get("t")
            observations = Observations(tmp / "observations", tenant="t",
                                        code_key=b"bench-scan-statistics")
            verifier = Verifier(tenant, observations, None, Checks())
            ledger, macs = tenant.ledger, tenant.keys.macs()
            codes_db = ledger.db["codes"]

            def baseline(text: str) -> None:
                _, codes, keys = parsed_codes(parse_many([text]))
                key_ids = check_tags(codes, macs)
                stored = ledger.codes.stored_many(keys)
                with ledger.env.read() as txn:
                    assert key_ids[0] is not None and txn.get(stored[0], db=codes_db)

            client = client_tag(b"bench-client-key", "t", "198.51.100.7", T0)
            public = ScanContext(purpose=1)
            chain = ScanContext("PHARM", GUANGZHOU, 2)
            verifiers = Verifiers(directory, Checks())
            reads = FrontdoorReads(directory, verifiers)
            caller = Principal("t", Role.PUBLIC, peer="ipv4:198.51.100.8:40000")
            no_scan = verify_use_case.Scan()

            def view(text: str) -> public_check.PublicCheck:
                return public_check.check(
                    reads, lambda tenant, code, context, at_ms: reads.verify(
                        tenant, code, context, at_ms, client="198.51.100.9"), text, now_ms=T0)

            cases: dict[str, Callable[[str], object]] = {
                "baseline": baseline,
                "first": lambda t: verifier.verify_one(t, public, T0, client=client),
                "repeat": lambda t: verifier.verify_one(t, public, T0, client=client),
                "supply chain": lambda t: verifier.verify_one(t, chain, T0),
                "unary use case": lambda t: verify_use_case.verify(
                    verifiers, "t", t, no_scan, T0, caller),
                "check page": view,
            }
            per_round = len(texts) // rounds
            figures: dict[str, list[float]] = {name: [] for name in cases}
            verifier.verify(texts[:1], public, T0)  # warm the product, batch and party caches
            view(texts[0])
            for r in range(rounds):
                chunk = texts[r * per_round:(r + 1) * per_round]
                settle()
                for name, each in cases.items():
                    figures[name].append(_per_code_us(each, chunk))
                observations.flush()
                verifiers.flush()
            observations.close()
            verifiers.close()
        finally:
            directory.close()
    return {name: statistics.median(values) for name, values in figures.items()}


def table(figures: dict[str, float]) -> str:
    """The figures as a table, each beside the baseline."""
    base = figures["baseline"]
    lines = [f"{'case':<14} {'CPU us/code':>12} {'x baseline':>11}"]
    lines += [f"{name:<14} {us:>12.1f} {us / base:>11.2f}" for name, us in figures.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_one", description=__doc__)
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES, help="packs commissioned")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    print(table(run(args.codes, args.rounds, args.keep)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
