"""National scale: build a ledger of 100,000,000 codes, then verify against it and a 1M ledger.

Build: `pharmatrace serve` (one writer, fsync per commit) receives RequestCodes for pools of
``--pool`` codes from ``--lines`` packaging lines at once until the ledger holds ``--codes``
codes; progress (rate of the last step, disk size, the server's memory) is printed every
``--report`` codes. The build resumes: pools already complete in ``--data`` are not requested
again, so an interrupted build continues where it stopped. The codes of the last pool are kept
in ``DATA/scale-sample.txt`` as the verification set (their serials are random, so they fall all
over the ledger's key space).

Verification at scale: the same scenarios (VerifyBatch of pallets, unary Verify closed loop, and
an open loop at a fixed rate for the latency percentiles) against the big ledger and against a
fresh ledger of 1,000,000 codes, in turn; the big ledger's p99 must stay within 1.5 times the
small one's and its throughput within 20 %.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import verify
from bench.harness import HOST, pharmatrace_server, workdir
from bench.issue import MIB, register_product, request_pool
from bench.load import LoadResult, latency_results, run_load
from bench.measure import RssSampler, cpu_seconds, memory_kib
from bench.report import Result, Target, say
from bench.scenarios import PALLET, site

DEFAULT_CODES = 100_000_000
DEFAULT_POOL = 1_000_000
DEFAULT_REPORT = 10_000_000
SAMPLE = "scale-sample.txt"
PROGRESS = "scale-progress.json"
REPORT = "scale-build.json"
"""The build's figures, summed over the runs that built it (a build may be resumed)."""


def disk_bytes(path: Path) -> int:
    """Bytes the files under ``path`` occupy on disk (allocated blocks, not apparent size)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


@dataclass
class BuildReport:
    """What building the ledger took."""

    codes: int
    seconds: float
    disk_bytes: int
    server_rss_anon_peak_mib: float
    server_vmhwm_mib: float
    server_rss_end_mib: float
    server_cpu_s: float
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.codes / self.seconds if self.seconds else 0.0


def build(data: Path, workdir: Path, codes: int = DEFAULT_CODES, pool: int = DEFAULT_POOL,
          lines: int = 1, report: int = DEFAULT_REPORT) -> BuildReport:
    """Fills ``data`` with ``codes`` codes through RequestCodes (resuming a partial build)."""
    progress_path = data / PROGRESS
    done: list[str] = (json.loads(progress_path.read_text())["pools"]
                       if progress_path.exists() else [])
    pools = [f"scale-{i:06d}" for i in range((codes + pool - 1) // pool)]
    finished = set(done)
    todo = [p for p in pools if p not in finished]
    saved = json.loads((data / REPORT).read_text()) if (data / REPORT).exists() else None
    if not todo and saved is not None:
        return BuildReport(**saved)
    steps: list[dict[str, Any]] = []
    with pharmatrace_server(data, workdir, workers=1, name="pharmatrace-scale-build") as server:
        address = f"{HOST}:{server.ports['issue']}"
        if not done:
            register_product(address)
        lock = threading.Lock()
        failures: list[BaseException] = []
        queue = list(todo)
        started = time.perf_counter()
        step_started, step_codes = started, 0
        built = built_before = len(done) * pool
        cpu_before = cpu_seconds(server.pid)

        def line() -> None:
            nonlocal step_started, step_codes, built
            while not failures:
                with lock:
                    if not queue:
                        return
                    request_id = queue.pop(0)
                last = request_id == pools[-1]
                count = codes - (len(pools) - 1) * pool if last else pool
                try:
                    run = request_pool(address, count, request_id, keep=last)
                except BaseException as exc:
                    failures.append(exc)
                    return
                if run.serials is not None:
                    (data / SAMPLE).write_text("\n".join(run.serials) + "\n")
                with lock:
                    done.append(request_id)
                    progress_path.write_text(json.dumps({"pools": done}) + "\n")
                    built += count
                    step_codes += count
                    if step_codes >= report or built >= codes:
                        now = time.perf_counter()
                        mem = memory_kib(server.pid)
                        step = {"codes": built, "step_rate": step_codes / (now - step_started),
                                "elapsed_s": now - started, "disk_gib": disk_bytes(data) / 2**30,
                                "server_rss_anon_mib": mem.get("RssAnon", 0) / MIB,
                                "server_rss_mib": mem.get("VmRSS", 0) / MIB}
                        steps.append(step)
                        say(f"scale: {built:>13,} codes  {step['step_rate']:>9,.0f} codes/s  "
                            f"{step['elapsed_s']:>7,.0f} s  disk {step['disk_gib']:6.1f} GiB  "
                            f"server RSS {step['server_rss_mib']:,.0f} MiB "
                            f"(own {step['server_rss_anon_mib']:,.0f})")
                        step_started, step_codes = now, 0

        with RssSampler(server.pid, interval=0.5) as rss:
            threads = [threading.Thread(target=line, name=f"line-{k}") for k in range(lines)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if failures:
            raise failures[0]
        seconds = time.perf_counter() - started
        end = memory_kib(server.pid)
        cpu = cpu_seconds(server.pid) - cpu_before
    build = BuildReport(
        codes=built - built_before, seconds=seconds, disk_bytes=disk_bytes(data),
        server_rss_anon_peak_mib=rss.root_anon_peak_kib / MIB,
        server_vmhwm_mib=rss.root_hwm_kib / MIB, server_rss_end_mib=end.get("VmRSS", 0) / MIB,
        server_cpu_s=cpu, steps=steps)
    if saved is not None:
        build.codes += saved["codes"]
        build.seconds += saved["seconds"]
        build.server_cpu_s += saved["server_cpu_s"]
        build.server_rss_anon_peak_mib = max(build.server_rss_anon_peak_mib,
                                              saved["server_rss_anon_peak_mib"])
        build.server_vmhwm_mib = max(build.server_vmhwm_mib, saved["server_vmhwm_mib"])
        build.steps = saved["steps"] + build.steps
    (data / REPORT).write_text(json.dumps(asdict(build), indent=1) + "\n")
    return build


def build_results(report: BuildReport, total: int) -> list[Result]:
    details = {"seconds": report.seconds, "codes_built": report.codes,
               "disk_bytes": report.disk_bytes, "disk_bytes_per_code": report.disk_bytes / total,
               "server_cpu_s": report.server_cpu_s, "steps": report.steps}
    return [
        Result(bench="scale", name=f"build {total:,} codes: time", unit="s",
               figure=report.seconds, key="scale.build_seconds", details=details),
        Result(bench="scale", name=f"build {total:,} codes: rate", unit="codes/s",
               figure=report.rate, key="scale.build_rate"),
        Result(bench="scale", name=f"build {total:,} codes: disk", unit="GiB",
               figure=report.disk_bytes / 2**30, key="scale.disk_gib"),
        Result(bench="scale", name="build: server peak anonymous RSS", unit="MiB",
               figure=report.server_rss_anon_peak_mib, key="scale.build_rss_anon",
               targets=[Target("max", 1024)]),
        Result(bench="scale", name="build: server VmHWM (with mapped ledger pages)", unit="MiB",
               figure=report.server_vmhwm_mib, key="scale.build_vmhwm"),
    ]


# -- verification at scale -----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOptions:
    small_codes: int = 1_000_000
    seconds: float = 10.0
    warmup: float = 2.0
    workers: int = 2
    clients: int = 2
    batch_channels: int = 4
    keep: bool = False


def read_sample(data: Path) -> list[str]:
    path = data / SAMPLE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build the ledger first "
                                "(python -m bench scale --build-only --data DIR)")
    return path.read_text().split()


def compare(big: Path, o: VerifyOptions) -> list[Result]:
    """The verification scenarios against the ledger in ``big`` and a fresh one of
    ``small_codes`` codes, measured in turn: the big ledger's figures with the small one's as
    their baselines."""
    serials = read_sample(big)
    with workdir("scale", o.keep) as tmp, \
            site(tmp, "pharmatrace-small", o.workers, codes=o.small_codes) as small, \
            site(tmp, "pharmatrace-big", o.workers, data=big, serials=serials) as large:
        pair = {"small": small, "big": large}
        cold: dict[str, float] = {}
        lookups: dict[str, float] = {}
        for name, s in pair.items():
            # The first pass reads the verified codes' pages from disk where they are not in
            # memory yet; the second finds them there, as in a service that has been running.
            say(f"scale: in-process lookups, {name} ledger, twice ...")
            cold[name], _ = verify.in_process_rate(s.data, s.batches, 300.0)
            lookups[name], _ = verify.in_process_rate(s.data, s.batches, 300.0)
            say(f"scale: {cold[name]:,.0f} codes/s, then {lookups[name]:,.0f} codes/s")
        batch: dict[str, LoadResult] = {}
        unary: dict[str, LoadResult] = {}
        latency: dict[str, LoadResult] = {}
        for name, s in pair.items():
            say(f"scale: VerifyBatch of pallets, {name} ledger ...")
            batch[name] = run_load(s.distributor_loads(o.clients, o.batch_channels), s.server,
                                   o.warmup, o.seconds)
            say(f"scale: {batch[name].units_per_s:,.0f} codes/s "
                f"({batch[name].major_faults:,} pages read from disk meanwhile)")
        for name, s in pair.items():
            say(f"scale: Verify closed loop, {name} ledger ...")
            unary[name] = run_load(s.consumer_loads(o.clients), s.server, o.warmup, o.seconds)
            say(f"scale: {unary[name].calls_per_s:,.0f} req/s "
                f"({unary[name].major_faults:,} pages read from disk meanwhile)")
        rate = unary["small"].calls_per_s / 2
        for name, s in pair.items():
            say(f"scale: Verify open loop at {rate:,.0f} req/s, {name} ledger ...")
            latency[name] = run_load(s.consumer_loads(o.clients, rate=rate), s.server, o.warmup,
                                     o.seconds)
            say(f"scale: p99 {latency[name].latency().quantile(0.99) * 1000:.2f} ms "
                f"({latency[name].major_faults:,} pages read from disk meanwhile)")
    codes = f"{len(serials):,}-code sample"
    small_name = f"{o.small_codes:,}-code ledger"
    results = [
        Result(bench="scale", name="in-process lookups, big ledger, first pass", unit="codes/s",
               figure=cold["big"], baseline=cold["small"], baseline_name=small_name,
               key="scale.in_process_cold"),
        Result(bench="scale", name="in-process lookups, big ledger, second pass",
               unit="codes/s", figure=lookups["big"], baseline=lookups["small"],
               baseline_name=small_name, key="scale.in_process"),
        Result(bench="scale", name=f"VerifyBatch x{PALLET:,}, big ledger ({o.workers} workers)",
               unit="codes/s", figure=batch["big"].units_per_s,
               baseline=batch["small"].units_per_s, baseline_name=small_name,
               key="scale.verify_batch", elsewhere=batch["big"].other_cpu,
               targets=[Target("min_ratio", 0.8), Target("min", 400_000)],
               details={"big": batch["big"].summary(), "small": batch["small"].summary(),
                        "codes": codes}),
        Result(bench="scale", name=f"Verify closed loop, big ledger ({o.workers} workers)",
               unit="req/s", figure=unary["big"].calls_per_s,
               baseline=unary["small"].calls_per_s, baseline_name=small_name,
               key="scale.verify_unary", elsewhere=unary["big"].other_cpu,
               targets=[Target("min_ratio", 0.8)],
               details={"big": unary["big"].summary(), "small": unary["small"].summary()}),
    ]
    results += latency_results(
        "scale", f"Verify at {rate:,.0f} req/s, big ledger", "scale.verify", latency["big"],
        latency["small"], small_name, [Target("max_ratio", 1.5)])
    return results
