"""Shared bench machinery: a real server in its own process group, peak RSS, results table, JSON.

Every server a benchmark starts is a subprocess in a new session listening on 127.0.0.1 with its
data in a temporary directory; its whole process group is killed when the benchmark ends, however
it ends. Results are printed as a table (the project's figure, the baseline measured in the same
run, their ratio, the target) and can be written as JSON.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
#: The same limits as pharmatrace_cli's clients: a 65,536-code chunk or a 100,000-code batch fits.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
DEV_TENANT = "demo"
"""`serve --dev` creates this tenant with development keys."""

quiet_wait_s = 0.0
"""Before each measurement, wait up to this long for other jobs to leave the cores alone."""

_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0
_live: set[ServerProcess] = set()


# -- processes -----------------------------------------------------------------------------------


class ServerProcess:
    """A command that writes a ready file once serving, run in its own process group.

    ``ports`` is the ready file's JSON. ``stop`` sends SIGTERM to the group, then SIGKILL to what
    is left of it; it is also run at interpreter exit for anything still alive.
    """

    def __init__(self, argv: Sequence[str], workdir: Path, name: str) -> None:
        self.name = name
        self.ready_file = workdir / f"{name}.ready.json"
        self.log_path = workdir / f"{name}.log"
        self._argv = [*argv, "--ready-file", str(self.ready_file)]
        self._process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> ServerProcess:
        self.ready_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _live.add(self)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {self._process.returncode} before "
                                   f"it was ready:\n{self.log_tail()}")
            if self.ready_file.exists():
                self.ports = json.loads(self.ready_file.read_text())
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {_READY_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_STOP_TIMEOUT_S)
        # Whatever is left of the group (the main process, or workers it failed to reap).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        _live.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pharmatrace_server(data: Path, workdir: Path, workers: int, name: str = "pharmatrace"
                       ) -> ServerProcess:
    """`pharmatrace serve --dev --insecure` on loopback, every port chosen by the kernel."""
    return ServerProcess(
        [PYTHON, "-m", "pharmatrace_cli", "serve", "--dev", "--insecure", "--data", str(data),
         "--host", HOST, "--issue-port", "0", "--verify-port", "0", "--metrics-port", "0",
         "--http-port", "0", "--workers", str(workers), "--grace", "2"],
        workdir, name,
    )


def echo_server(workdir: Path, workers: int) -> ServerProcess:
    """bench/echo.py: the bare gRPC baseline, ``workers`` processes on one port."""
    return ServerProcess([PYTHON, "-m", "bench.echo", "--host", HOST, "--workers", str(workers)],
                         workdir, "echo")


def _stop_all() -> None:
    for server in list(_live):
        server.stop()


atexit.register(_stop_all)


def exit_on_sigterm() -> None:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C, so ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory for ledgers and logs, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"pharmatrace-bench-{prefix}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"  (kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- /proc ---------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, from the parent ids in /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ")".
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out.extend(children)
        todo.extend(children)
    return out


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of a process, in KiB; {} once it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[name] = int(value.split()[0])
    except OSError:
        return {}
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_written_bytes(pid: int) -> int:
    """Bytes a process has caused to be written to storage so far (/proc/PID/io)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def major_faults() -> int:
    """Page faults the machine has served from disk since boot (/proc/vmstat pgmajfault): a
    window in which it grows read ledger pages that were not in memory."""
    with open("/proc/vmstat") as f:
        for line in f:
            if line.startswith("pgmajfault "):
                return int(line.split()[1])
    return 0


def busy_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Waits, at most ``max_wait`` s, until the machine has been nearly idle (fewer than
    ``threshold`` cores busy) for half a second, so that a measurement does not share the cores
    with another job. Returns the cores busy in the last half second."""
    deadline = time.monotonic() + max_wait
    while True:
        before = busy_cpu_seconds()
        time.sleep(0.5)
        busy = (busy_cpu_seconds() - before) / 0.5
        if busy < threshold or time.monotonic() >= deadline:
            if busy >= threshold and max_wait > 0:
                say(f"  (still {busy:.2f} cores busy with other work after {max_wait:.0f} s: "
                    "measuring anyway)")
            return busy


class Elsewhere:
    """Cores kept busy by processes other than ``pids`` (with their children) and this one
    during a ``with`` block: how far other jobs on the machine may have pulled a figure down."""

    def __init__(self, *pids: int) -> None:
        self._roots = pids
        self.cores = 0.0

    def __enter__(self) -> Elsewhere:
        self._pids = [os.getpid(), *self._roots]
        for pid in self._roots:
            self._pids.extend(descendants(pid))
        self._cpu = [cpu_seconds(p) for p in self._pids]
        self._busy = busy_cpu_seconds()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self._started
        after = [cpu_seconds(p) for p in self._pids]
        # NaN: the process has gone, and its last CPU time with it.
        ours = sum(b - a for a, b in zip(self._cpu, after, strict=True) if not math.isnan(b))
        if elapsed > 0:
            self.cores = max(0.0, (busy_cpu_seconds() - self._busy - ours) / elapsed)


def settle() -> None:
    """``wait_for_quiet`` for up to ``quiet_wait_s``; called before every measured step."""
    if quiet_wait_s > 0:
        wait_for_quiet(quiet_wait_s)


class Profiler:
    """``py-spy record`` of a process and its children while a window runs, as collapsed stacks.

    Optional: without py-spy beside this Python (``pip install py-spy``) it says so and does
    nothing. Sampling is non-blocking, so the profiled figures stay close to unprofiled ones.
    """

    def __init__(self, pid: int, path: Path, rate: int = 100) -> None:
        self.pid = pid
        self.path = path
        self.rate = rate
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return (Path(PYTHON).parent / "py-spy").exists() or shutil.which("py-spy") is not None

    def start(self) -> None:
        executable = Path(PYTHON).parent / "py-spy"
        spy = str(executable) if executable.exists() else shutil.which("py-spy")
        if spy is None:
            say("  (no py-spy: not profiling)")
            return
        self._process = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--output", str(self.path), "--format", "raw",
             "--rate", str(self.rate), "--nonblocking", "--subprocesses"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> Path | None:
        """Ends the recording (SIGINT makes py-spy write its file); the file, if written."""
        process = self._process
        if process is None:
            return None
        self._process = None
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return self.path if self.path.exists() else None


def profile_summary(path: Path, top: int = 12) -> str:
    """Where the samples of a collapsed-stack file went: by process, by own (self) frame, and
    by the project's frames including callees."""
    by_process: dict[str, int] = {}
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    project = ("tracecore/", "verify_svc/", "codegen_svc/", "tracerpc/", "pharmatrace_cli/")
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        processes = []
        while frames and frames[0].startswith("process "):
            # py-spy: the chain of parent processes, 'process PID:"command line"' each; the
            # command line may itself hold ";".
            label = frames.pop(0)
            while not label.endswith('"') and frames:
                label += ";" + frames.pop(0)
            processes.append(label)
        if not frames:
            continue
        process = ("verification worker" if processes and "spawn_main" in processes[-1]
                   else "main process")
        process += (", helper thread (writer, flusher)"
                    if frames[0].startswith("Thread._bootstrap") else ", event loop")
        total += n
        by_process[process] = by_process.get(process, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            if any(p in frame for p in project):
                inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return "  (no samples)"

    def block(title: str, counts: dict[str, int], limit: int) -> list[str]:
        rows = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [f"  {title}"] + [f"    {n / total:6.1%}  {name}" for name, n in rows]

    lines = [f"  {total} samples ({path})"]
    lines += block("by process", by_process, 8)
    lines += block("self (the frame on top of the stack)", own, top)
    lines += block("inclusive, project frames", inclusive, top)
    return "\n".join(lines)


@contextlib.contextmanager
def profiling(server: ServerProcess, directory: Path | None, name: str) -> Iterator[None]:
    """Profiles ``server`` into ``directory/name.txt`` for the ``with`` block, if a directory is
    given, and prints where the samples went."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(server.pid, directory / f"{name}.txt")
    profiler.start()
    try:
        yield
    finally:
        path = profiler.stop()
        if path is not None:
            say(f"profile of {name}:\n{profile_summary(path)}")


class RssSampler:
    """Samples the memory of a process and its descendants every ``interval`` s, in a thread.

    The root's VmHWM is the kernel's own peak of the root process: it counts the pages of
    memory-mapped files (an LMDB ledger) the process has touched as well as its own memory,
    which is the sampled peak of RssAnon. The tree peak is the highest sum of VmRSS over the
    tree seen by a sample.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.root_hwm_kib = 0
        self.root_anon_peak_kib = 0
        self.root_peak: dict[str, int] = {}
        self.tree_peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pids: list[int] = []
        refreshed = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - refreshed > 1.0:
                pids = descendants(self.pid)
                refreshed = now
            root = memory_kib(self.pid)
            if not root:
                return
            self.root_hwm_kib = max(self.root_hwm_kib, root.get("VmHWM", 0))
            self.root_anon_peak_kib = max(self.root_anon_peak_kib, root.get("RssAnon", 0))
            if root.get("VmRSS", 0) > self.root_peak.get("VmRSS", 0):
                self.root_peak = root
            tree = root.get("VmRSS", 0) + sum(memory_kib(p).get("VmRSS", 0) for p in pids)
            self.tree_peak_kib = max(self.tree_peak_kib, tree)
            self.samples += 1
            self._stop.wait(self.interval)


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One goal: ``figure`` at least / at most ``value``, or the ratio to the baseline at
    least / at most ``value``."""

    kind: str  # "min", "max", "min_ratio" or "max_ratio"
    value: float

    def met(self, figure: float, ratio: float | None) -> bool:
        if self.kind == "min":
            return figure >= self.value
        if self.kind == "max":
            return figure <= self.value
        if self.kind == "max_ratio":
            return ratio is not None and ratio <= self.value
        return ratio is not None and ratio >= self.value

    def text(self, unit: str) -> str:
        if self.kind in ("min_ratio", "max_ratio"):
            sign = ">=" if self.kind == "min_ratio" else "<="
            return f"{sign} {self.value:.0%} of baseline"
        sign = ">=" if self.kind == "min" else "<="
        return f"{sign} {_number(self.value)} {unit}"


@dataclass
class Result:
    """A measured figure beside its baseline from the same run."""

    bench: str
    name: str
    unit: str
    figure: float
    baseline: float | None = None
    baseline_name: str = ""
    key: str = ""
    """Stable identifier, e.g. ``verify.batch.w2``: what bench/floors.json names."""
    elsewhere: float | None = None
    """Cores other jobs kept busy while this was measured (figure or baseline, the larger)."""
    targets: list[Target] = field(default_factory=list)
    command: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline:
            return None
        return self.figure / self.baseline

    @property
    def passed(self) -> bool | None:
        if not self.targets:
            return None
        return all(t.met(self.figure, self.ratio) for t in self.targets)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["passed"] = self.passed
        out["targets"] = [{"kind": t.kind, "value": t.value, "text": t.text(self.unit),
                           "met": t.met(self.figure, self.ratio)} for t in self.targets]
        return out


def _number(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def table(results: Sequence[Result]) -> str:
    """An aligned text table: figure, baseline, ratio, target, pass / miss."""
    header = ("measure", "figure", "unit", "baseline", "ratio", "target", "result",
              "busy elsewhere")
    rows = [header]
    for r in results:
        rows.append((
            r.name,
            _number(r.figure),
            r.unit,
            f"{_number(r.baseline)} ({r.baseline_name})" if r.baseline is not None else "-",
            f"{r.ratio:.1%}" if r.ratio is not None else "-",
            " & ".join(t.text(r.unit) for t in r.targets) or "-",
            {True: "pass", False: "MISS", None: "-"}[r.passed],
            f"{r.elsewhere:.2f} cores" if r.elsewhere is not None else "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 3, 4, 7}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_table(results: Sequence[Result]) -> str:
    """The load clients behind the results (those whose details carry a load summary, found
    at the top of ``details`` or one level down): calls, latency percentiles, and every
    call's outcome by status code. Empty when there are none."""
    rows = [("load", "calls", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "outcomes")]
    seen: set[str] = set()
    for r in results:
        name = r.name.removesuffix(" p99")
        found = [("", r.details)] if "outcomes" in r.details else [
            ("" if k == "load" else f" [{k}]", v) for k, v in r.details.items()
            if isinstance(v, dict) and "outcomes" in v]
        for suffix, load in found:
            same = json.dumps(load, sort_keys=True, default=str)
            if same in seen:
                continue
            seen.add(same)
            lat = load.get("latency", {})
            rows.append((name + suffix, f"{load['calls']:,}",
                         *(_number(lat.get(k, math.nan)) for k in
                           ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms")),
                         " ".join(f"{k}={v:,}" for k, v in load["outcomes"].items())))
    if len(rows) == 1:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if 0 < i < 6 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import grpc
    import lmdb

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "grpcio": grpc.__version__, "lmdb": lmdb.__version__, "platform": platform.platform(),
    }


def write_json(path: Path, results: Sequence[Result], extra: dict[str, Any] | None = None
               ) -> None:
    payload = {
        "command": " ".join([Path(PYTHON).name, "-m", "bench", *sys.argv[1:]]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "results": [r.as_json() for r in results],
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def say(text: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(text, file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[min(rank, len(sorted_values) - 1)]
