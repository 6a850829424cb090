"""What keeping codes hashed at rest costs verification: the keyed hash of each code key that
the scan statistics are stored under, against the statistics' whole per-code work.

In-process, on fresh code keys in 10,000-code batches (a pallet's VerifyBatch), CPU time of
this process per code, median of ``--rounds`` rounds:

- hash: the keyed BLAKE2b (16 bytes) of each code key, as ``Observations`` stores it;
- record: ``Observations.record_located`` of the batch (hash included), as verification
  counts a scan;
- flush: merging those scans into the stored statistics (hash already done).

    python -m bench.atrest [--codes N] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tracecore.ledger.observations import CODE_HASH_BYTES, Observations

BATCH = 10_000
_GTIN = b"G09501101530003"


def _keys(start: int, n: int) -> list[bytes]:
    return [_GTIN + f"{i:020d}".encode() for i in range(start, start + n)]


def _hash_all(keys: list[bytes], key: bytes) -> list[bytes]:
    blake2b = hashlib.blake2b
    return [blake2b(k, key=key, digest_size=CODE_HASH_BYTES).digest() for k in keys]


def _record_all(observations: Observations, batches: list[list[bytes]], now_ms: int) -> None:
    for batch in batches:
        observations.record_located(batch, now_ms, 440106)


def _per_code_us(fn: Callable[[], object], n: int) -> float:
    started = time.process_time()
    fn()
    return (time.process_time() - started) / n * 1e6


def measure(codes: int, rounds: int) -> dict[str, float]:
    """Median µs per code of each step over ``rounds`` rounds of ``codes`` fresh keys."""
    key = hashlib.sha256(b"bench at rest").digest()
    hashes, records, flushes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        observations = Observations(Path(tmp) / "observations", tenant="bench", code_key=key)
        try:
            for r in range(rounds):
                keys = _keys(r * codes, codes)
                hashes.append(_per_code_us(functools.partial(_hash_all, keys, key), codes))
                batches = [keys[i:i + BATCH] for i in range(0, codes, BATCH)]
                records.append(_per_code_us(
                    functools.partial(_record_all, observations, batches, 1_000 + r), codes))
                flushes.append(_per_code_us(observations.flush, codes))
        finally:
            observations.close()
    return {"hash_us_per_code": statistics.median(hashes),
            "record_us_per_code": statistics.median(records),
            "flush_us_per_code": statistics.median(flushes)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.atrest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = measure(args.codes, args.rounds)
    share = figures["hash_us_per_code"] / figures["record_us_per_code"]
    print(f"keyed hash {figures['hash_us_per_code']:.2f} µs/code; counting a scan "
          f"{figures['record_us_per_code']:.2f} µs/code (hash included, {share:.0%}); "
          f"flush {figures['flush_us_per_code']:.2f} µs/code")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
