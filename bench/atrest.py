"""What keeping codes hashed or encrypted at rest costs: the keyed hash of each code key that
the scan statistics are stored under, against the statistics' whole per-code work; and the
encryption of each code's serial in the live ledger, against the LMDB lookup it comes with.

In-process, on fresh code keys (20-character GS1 serials, the longest) in 10,000-code batches
(a pallet's VerifyBatch), CPU time of this process per code, median of ``--rounds`` rounds:

- hash: the keyed BLAKE2b (16 bytes) of each code key, as ``Observations`` stores it;
- record: ``Observations.record_located`` of the batch (hash included), as verification
  counts a scan;
- flush: merging those scans into the stored statistics (hash already done), codes scanned
  for the first time (nothing stored yet);
- flush again: the same codes counted once more, then merged: each has stored totals to add to;
- siv store / siv read: ``CodeKeys.stored_many`` / ``plain_many`` (AES-256-SIV of the serial,
  as the ledger stores and reads every code key);
- ecb: AES-256-ECB of one padded 16-byte block per code over the whole batch in one call, the
  cheaper permutation considered instead: it fits only serials of at most 16 bytes (NMPA's 13
  digits, not GS1's 20 characters);
- get: the raw LMDB ``get`` of each code's record in one read transaction (the baseline: what a
  lookup costs without encryption);
- seal / open: ``CodeKeys.seal`` / ``open`` (XAES-256-GCM) of whole records of 160 bytes (an
  audit record), 600 (an event of a few codes), 16 KiB (a captured EPCIS document, an event of
  400 codes) and 256 KiB (a pallet's event), per record, beside AES-256-GCM as records were
  sealed before (the baseline) and AES-256-GCM-SIV (the other nonce-safe choice), in the same
  run.

    python -m bench.atrest [--codes N] [--rounds N] [--records N] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import lmdb
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV

from tracecore.ledger.code_keys import CodeKeys
from tracecore.ledger.observations import Observations

BATCH = 10_000
#: Record sizes sealed: an audit record, an event record, a captured document.
RECORD_BYTES = (160, 600, 16_384, 262_144)
_GTIN = b"G09501101530003"


def _keys(start: int, n: int) -> list[bytes]:
    return [_GTIN + f"{i:020d}".encode() for i in range(start, start + n)]


def _hash_all(observations: Observations, batches: list[list[bytes]]) -> None:
    """The keyed hash the statistics store codes under (compiled where built), batch by batch."""
    for batch in batches:
        observations._hashed(batch)


def _record_all(observations: Observations, batches: list[list[bytes]], now_ms: int) -> None:
    for batch in batches:
        observations.record_located(batch, now_ms, 440106)


def _ecb_all(keys: list[bytes], key: bytes) -> bytes:
    """One padded block per serial (its last 16 bytes), all in one ``update``."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    cut = len(_GTIN)
    return encryptor.update(b"".join(k[cut:][-16:].ljust(16, b"\0") for k in keys))


def _get_all(env: lmdb.Environment, db: lmdb._Database, keys: list[bytes]) -> int:
    with env.begin(buffers=True) as txn:
        get = txn.get
        return sum(1 for k in keys if get(k, db=db) is not None)


def _per_code_us(fn: Callable[[], object], n: int) -> float:
    started = time.process_time()
    fn()
    return (time.process_time() - started) / n * 1e6


def measure(codes: int, rounds: int) -> dict[str, float]:
    """Median µs per code of each step over ``rounds`` rounds of ``codes`` fresh keys."""
    key = hashlib.sha256(b"bench at rest").digest()
    hashes, records, flushes, again = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        observations = Observations(Path(tmp) / "observations", tenant="bench", code_key=key)
        try:
            for r in range(rounds):
                keys = _keys(r * codes, codes)
                batches = [keys[i:i + BATCH] for i in range(0, codes, BATCH)]
                hashes.append(_per_code_us(
                    functools.partial(_hash_all, observations, batches), codes))
                records.append(_per_code_us(
                    functools.partial(_record_all, observations, batches, 1_000 + r), codes))
                flushes.append(_per_code_us(observations.flush, codes))
                _record_all(observations, batches, 2_000 + r)
                again.append(_per_code_us(observations.flush, codes))
        finally:
            observations.close()
    figures = {"hash_us_per_code": statistics.median(hashes),
               "record_us_per_code": statistics.median(records),
               "flush_us_per_code": statistics.median(flushes),
               "flush_stored_us_per_code": statistics.median(again)}
    figures.update(_ledger_keys(codes, rounds))
    return figures


def _ledger_keys(codes: int, rounds: int) -> dict[str, float]:
    """Median µs per code of encrypting and decrypting code keys, and of the plain lookup."""
    at_rest = CodeKeys(hashlib.sha256(b"bench at rest").digest(), "bench")
    ecb_key = hashlib.sha256(b"bench ecb").digest()
    stores, reads, ecbs, gets = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        env = lmdb.open(tmp, map_size=1 << 32, max_dbs=2, sync=False)
        db = env.open_db(b"codes")
        try:
            for r in range(rounds):
                keys = _keys(r * codes, codes)
                with env.begin(write=True, db=db) as txn:
                    txn.cursor().putmulti([(k, bytes(44)) for k in keys])
                batches = [keys[i:i + BATCH] for i in range(0, codes, BATCH)]
                stored: list[list[bytes]] = []
                stores.append(_per_code_us(functools.partial(
                    stored.extend, (at_rest.stored_many(b) for b in batches)), codes))
                reads.append(_per_code_us(functools.partial(
                    list, (at_rest.plain_many(b) for b in stored)), codes))
                ecbs.append(_per_code_us(functools.partial(
                    list, (_ecb_all(b, ecb_key) for b in batches)), codes))
                gets.append(_per_code_us(functools.partial(
                    list, (_get_all(env, db, b) for b in batches)), codes))
        finally:
            env.close()
    return {"siv_store_us_per_code": statistics.median(stores),
            "siv_read_us_per_code": statistics.median(reads),
            "ecb_us_per_code": statistics.median(ecbs),
            "lmdb_get_us_per_code": statistics.median(gets)}


def _sealing(records: int, rounds: int) -> dict[str, float]:
    """Median µs per record of ``CodeKeys.seal`` / ``open``, of AES-GCM as before and of
    AES-GCM-SIV, for each size of ``RECORD_BYTES`` (fewer records of the larger sizes)."""
    at_rest = CodeKeys(hashlib.sha256(b"bench at rest").digest(), "bench")
    ciphers: dict[str, AESGCM | AESGCMSIV] = {
        "gcm": AESGCM(hashlib.sha256(b"bench gcm").digest()),
        "gcm_siv": AESGCMSIV(hashlib.sha256(b"bench gcm-siv").digest())}

    def sealer(cipher: AESGCM | AESGCMSIV) -> tuple[Callable[[bytes], bytes],
                                                     Callable[[bytes], bytes]]:
        def seal(record: bytes) -> bytes:  # as ``CodeKeys.seal`` did before XAES
            nonce = os.urandom(12)
            return nonce + cipher.encrypt(nonce, record, None)

        def open_(sealed: bytes) -> bytes:
            return cipher.decrypt(sealed[:12], sealed[12:], None)

        return seal, open_

    ways = {"xaes": (at_rest.seal, at_rest.open),
            **{name: sealer(cipher) for name, cipher in ciphers.items()}}
    figures: dict[str, float] = {}
    for size in RECORD_BYTES:
        n = max(200, min(records, records * 4096 // size))
        plain = [os.urandom(size) for _ in range(n)]
        for name, (seal, open_) in ways.items():
            seals, opens = [], []
            for _ in range(rounds):
                sealed: list[bytes] = []
                seals.append(_per_code_us(functools.partial(sealed.extend, map(seal, plain)), n))
                opens.append(_per_code_us(functools.partial(list, map(open_, sealed)), n))
            figures[f"{name}_seal_{size}_us_per_record"] = statistics.median(seals)
            figures[f"{name}_open_{size}_us_per_record"] = statistics.median(opens)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.atrest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=20_000,
                        help="records sealed per size and round")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = measure(args.codes, args.rounds)
    figures.update(_sealing(args.records, args.rounds))
    share = figures["hash_us_per_code"] / figures["record_us_per_code"]
    print(f"keyed hash {figures['hash_us_per_code']:.2f} µs/code; counting a scan "
          f"{figures['record_us_per_code']:.2f} µs/code (hash included, {share:.0%}); "
          f"flush {figures['flush_us_per_code']:.2f} µs/code (first scans), "
          f"{figures['flush_stored_us_per_code']:.2f} µs/code (codes with stored totals)")
    get = figures["lmdb_get_us_per_code"]
    print(f"ledger codes: AES-SIV store {figures['siv_store_us_per_code']:.2f} µs/code, read "
          f"{figures['siv_read_us_per_code']:.2f} µs/code; AES-ECB one block "
          f"{figures['ecb_us_per_code']:.2f} µs/code (16-byte serials only); baseline LMDB get "
          f"{get:.2f} µs/code (SIV store {figures['siv_store_us_per_code'] / get:.1f}x it)")
    for size in RECORD_BYTES:
        f = {name: figures[f"{name}_{size}_us_per_record"] for name in (
            "xaes_seal", "xaes_open", "gcm_seal", "gcm_open", "gcm_siv_seal", "gcm_siv_open")}
        print(f"records of {size:,} bytes: XAES-256-GCM seal {f['xaes_seal']:.2f} µs, open "
              f"{f['xaes_open']:.2f} µs; baseline AES-GCM {f['gcm_seal']:.2f} / "
              f"{f['gcm_open']:.2f} µs ({f['xaes_seal'] / f['gcm_seal']:.2f}x, "
              f"{f['xaes_open'] / f['gcm_open']:.2f}x); AES-GCM-SIV {f['gcm_siv_seal']:.2f} / "
              f"{f['gcm_siv_open']:.2f} µs ({f['gcm_siv_seal'] / f['gcm_seal']:.2f}x, "
              f"{f['gcm_siv_open'] / f['gcm_open']:.2f}x)")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
