"""What a benchmark measures besides time, from /proc: memory, CPU, disk writes and faults of a
process tree; waiting for a quiet machine; profiling a server."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import PYTHON, ServerProcess
from bench.report import say

quiet_wait_s = 0.0
"""Before each measurement, wait up to this long for other jobs to leave the cores alone."""


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
    project = ("tracecore/", "verify_svc/", "codegen_svc/", "tracerpc/", "pharmatrace_cli/",
               "frontdoor/")
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
