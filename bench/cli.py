"""`pharmatrace verify --file` against the VerifyBatch rate of the same server, in the same run.

Set-up: a ledger of ``codes`` codes issued through RequestCodes, written one a line as scanners
send them (GS1 element strings with expiry and lot). Baseline: one client process keeping two
VerifyBatch calls of ``batch`` codes in flight for ``seconds`` (answers checked), the most a
single client gets from the server. Figure: the command a clerk types, `pharmatrace verify
--file F --json` into a file, codes per second over its whole run (start-up, reading the file,
every answer written). Goal: at least 70 % of the baseline.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bench.harness import DEV_TENANT, HOST, pharmatrace_server, workdir
from bench.issue import register_product, request_pool
from bench.load import Load, run_load, write_requests
from bench.measure import settle
from bench.report import Result, Target, say
from bench.verify import BATCH_METHOD, batch_requests, in_batches, scanned_texts

DEFAULT_CODES = 1_000_000
DEFAULT_BATCH = 10_000
DEFAULT_SECONDS = 10.0
MIN_RATIO = 0.70
ROOT = Path(__file__).resolve().parents[1]


def run(codes: int = DEFAULT_CODES, *, batch: int = DEFAULT_BATCH,
        seconds: float = DEFAULT_SECONDS, workers: int = 2, keep: bool = False) -> list[Result]:
    with workdir("cli", keep) as tmp:
        data = tmp / "data"
        say(f"cli: issuing a ledger of {codes:,} codes through RequestCodes ...")
        with pharmatrace_server(data, tmp, workers=1, name="pharmatrace-setup") as server:
            register_product(f"{HOST}:{server.ports['issue']}")
            pool = request_pool(f"{HOST}:{server.ports['issue']}", codes, "bench-cli", keep=True)
        assert pool.serials is not None
        texts = scanned_texts(pool.serials)
        del pool
        codes_file = tmp / "codes.txt"
        codes_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        requests_file = tmp / "batch-requests.bin"
        write_requests(requests_file, batch_requests(in_batches(texts, batch)))
        del texts
        with pharmatrace_server(data, tmp, workers=workers, name=f"pharmatrace-w{workers}"
                                ) as server:
            address = f"{HOST}:{server.ports['verify']}"
            say(f"cli: VerifyBatch x{batch:,}, 1 client process, 2 calls in flight, "
                f"{seconds:.0f} s ...")
            load = run_load([Load(address, BATCH_METHOD, str(requests_file), "batch", 2,
                                  concurrency=2)], server, 2.0, seconds)
            if load.errors:
                raise RuntimeError(f"VerifyBatch load: {load.summary()['first_error']}")
            baseline = load.units_per_s
            say(f"cli: VerifyBatch {baseline:,.0f} codes/s")
            say(f"cli: pharmatrace verify --file ({codes:,} codes) --json ...")
            settle()
            out = tmp / "answers.jsonl"
            started = time.perf_counter()
            with open(out, "w", encoding="utf-8") as f:
                done = subprocess.run(
                    [str(ROOT / ".venv" / "bin" / "pharmatrace"), "verify", "--tenant",
                     DEV_TENANT, "--verify-addr", address, "--file", str(codes_file),
                     "--json", "--batch-size", str(batch)],
                    stdout=f, stderr=subprocess.PIPE, text=True, check=False)
            elapsed = time.perf_counter() - started
            if done.returncode not in (0, 4):  # 4: genuine, with alerts (not commissioned)
                raise RuntimeError(f"pharmatrace verify exited {done.returncode}: "
                                   f"{done.stderr.strip()}")
            answered = _genuine_lines(out)
            if answered != codes:
                raise RuntimeError(f"pharmatrace verify answered {answered:,} of {codes:,} "
                                   "codes GENUINE")
            rate = codes / elapsed
            say(f"cli: {rate:,.0f} codes/s ({rate / baseline:.0%} of VerifyBatch); "
                f"summary:\n{done.stderr.strip()}")
    return [Result(bench="cli", name=f"verify --file --json, {codes:,} codes", unit="codes/s",
                   figure=rate, baseline=baseline, baseline_name="VerifyBatch, 1 client",
                   key="cli.verify_file", elsewhere=load.other_cpu,
                   targets=[Target("min_ratio", MIN_RATIO)],
                   details={"seconds": elapsed, "codes": codes, "batch": batch,
                            "workers": workers, "load": load.summary()})]


def _genuine_lines(path: Path) -> int:
    genuine = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            genuine += json.loads(line)["verdict"] == "VERDICT_GENUINE"
    return genuine
