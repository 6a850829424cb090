"""HTTP front door benchmarks: resolver redirects and check-page views a second, each beside a
bare hello-world on the same server stack measured in the same run, and the LVMS responder's
p99 at half its maximum rate. The resolver is measured twice over the same packs: as its
answers are made (a cold worker, every pack new at first), then as they are kept.

    python -m bench.http [--workers 1,2] [--seconds S] [--codes N] [--json PATH] [--keep]
                         [--profile DIR]

Maximum rates are closed loops of `wrk` (Debian package wrk: one C thread, 32 connections,
every request a different pack); the LVMS latency is an open loop (``bench.open_loop``: fixed
arrival times, a latency runs from when the request was due) of keep-alive connections on a
uvloop of this process, which reports the CPU it spent itself (``client_cores``) and how late
it sent (``send_lag_p99_ms``), so that a tail of the client's own making shows as such.
Every answer's status is checked: a rate counts only answers of the expected status. Beside
each rate, the CPU µs the server and its workers spent per answer (``server_cpu_us``): other
jobs on the machine move it far less than they move a rate. Beside the check page's, the
hello-world's rate and CPU for a static page as long as the check page (``static_page_ratio``,
``static_page_cpu_us``): what sending those bytes alone costs the stack.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, lifecycle_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench import harness, measure, report
from bench.harness import HOST, PYTHON, ServerProcess
from bench.open_loop import get_requests, open_loop
from bench.report import Result, Target, say
from tracecore import gs1

GTIN = "09501101530027"
LOT = "HTTP1"
CONNECTIONS = 32
WRK_THREADS = 1
#: The resolver and check page must reach this share of hello-world's rate.
RATIO_TARGET = 0.70
LVMS_P99_MS = 20.0
_LUA = """
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local auth = os.getenv("WRK_AUTH")
local headers = {}
if auth and auth ~= "" then headers["Authorization"] = auth end
local i = math.random(#paths)
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("STATUS_ERRORS %d\\n", summary.errors.status))
  io.write(string.format("P99_US %d\\n", latency:percentile(99)))
end
"""


def _gln() -> str:
    body = "".join(random.choice("123456789") for _ in range(12))
    return body + str(gs1.check_digit(body))


class Fixture:
    """A served tenant with commissioned packs, a wholesaler with an LVMS token, and the
    request targets each benchmark cycles through."""

    def __init__(self, issue_addr: str, codes: int) -> None:
        channel = grpc.insecure_channel(issue_addr)
        admin = admin_pb2_grpc.AdminStub(channel)
        tenant = "demo"
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
            gtin=GTIN, name="Amoxicillin Capsules", generic_name="amoxicillin",
            form="capsule", strength="500 mg", pack_spec="24 capsules / box",
            mah="Bench Pharma Ltd", manufacturer="Bench Pharma Plant",
            approval_number="H20260002")))
        admin.AddProductLink(apb.AddProductLinkRequest(tenant=tenant, product=GTIN,
                             link=cpb.ProductLink(link_type="gs1:epil", lang="en",
                                                  href="https://example.com/leaflet.pdf")))
        admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
            product=GTIN, lot=LOT, manufactured_on="2026-01-01", expires_on="2029-06-30")))
        for party_id, kind in (("PLANT", cpb.PARTY_KIND_PLANT),
                               ("WHOLESALER", cpb.PARTY_KIND_DISTRIBUTOR)):
            admin.AddParty(apb.AddPartyRequest(tenant=tenant, party=cpb.Party(
                party_id=party_id, name=party_id.title(), gln=_gln(), region="440305",
                kind=kind)))
        self.req_gln = admin.GetParty(apb.GetPartyRequest(tenant=tenant,
                                                          party_id="WHOLESALER")).party.gln
        self.token = admin.CreateToken(apb.CreateTokenRequest(
            tenant=tenant, role=apb.ROLE_DISTRIBUTOR, party_id="WHOLESALER")).token
        chunks = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(
            ipb.RequestCodesRequest(tenant=tenant, product=GTIN, lot=LOT, count=codes,
                                    request_id=f"bench-http-{uuid.uuid4().hex}"))
        self.serials = [s for chunk in chunks for s in chunk.serials]
        lifecycle_pb2_grpc.LifecycleStub(channel).Commission(lpb.CommissionRequest(
            tenant=tenant, codes=[f"(01){GTIN}(21){s}" for s in self.serials],
            context=lpb.EventContext(party_id="PLANT")))
        channel.close()

    def resolver_paths(self) -> list[str]:
        return [f"/01/{GTIN}/10/{LOT}/21/{s}?17=290630" for s in self.serials]

    def check_paths(self) -> list[str]:
        return [f"/check?code={quote(f'(01){GTIN}(21){s}', safe='')}" for s in self.serials]

    def lvms_paths(self) -> list[str]:
        return [f"/verify/gtin/{GTIN}/lot/{LOT}/ser/{s}?exp=290630&corrUUID={uuid.uuid4()}"
                f"&context=dscsaSaleableReturn&reqGLN={self.req_gln}" for s in self.serials]


class _Busy:
    """Cores kept busy, during a ``with`` block, by processes other than the servers ``pids``
    (with their children), this one and the load generators it ran."""

    def __init__(self, *pids: int) -> None:
        self._inner = measure.Elsewhere(*pids)
        self.cores = 0.0

    def __enter__(self) -> _Busy:
        self._children = _children_cpu()
        self._started = time.monotonic()
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)
        elapsed = time.monotonic() - self._started
        load = _children_cpu() - self._children
        self.cores = max(0.0, self._inner.cores - load / elapsed) if elapsed else 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(port: int, paths: list[str], workdir: Path, seconds: float, auth: str = ""
        ) -> tuple[float, float, int]:
    """(answers a second, p99 ms, answers of a wrong status) of a closed loop over ``paths``."""
    script = workdir / "cycle.lua"
    script.write_text(_LUA)
    listing = workdir / f"paths-{uuid.uuid4().hex[:6]}.txt"
    listing.write_text("\n".join(paths) + "\n")
    done = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s", "-s", str(script),
         f"http://{HOST}:{port}{paths[0]}"],
        env={"WRK_PATHS": str(listing), "WRK_AUTH": auth, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True)
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout)[1])  # type: ignore[index]
    p99 = int(re.search(r"P99_US (\d+)", done.stdout)[1]) / 1000  # type: ignore[index]
    errors = int(re.search(r"STATUS_ERRORS (\d+)", done.stdout)[1])  # type: ignore[index]
    return rate, p99, errors


def _length(port: int, path: str) -> int:
    """The length in bytes of the answer's body to ``path``."""
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as answer:
        return len(answer.read())


def tree(pid: int) -> list[int]:
    """A server process and its workers."""
    return [pid, *measure.descendants(pid)]


def _measure(pids: tuple[int, ...], serving: int, port: int, paths: list[str], workdir: Path,
             seconds: float, auth: str = "", profile: Path | None = None
             ) -> tuple[tuple[float, float, int], float, float]:
    """``wrk``'s figures, the cores other work kept busy meanwhile, and the CPU µs the
    ``serving`` process and its workers spent per answer; with ``profile``, py-spy's stacks of
    them in the window, summarised."""
    measure.settle()
    profiler = measure.Profiler(serving, profile) if profile is not None else None
    if profiler is not None:
        profiler.start()
    spent = sum(measure.cpu_seconds(p) for p in tree(serving))
    try:
        with _Busy(*pids) as elsewhere:
            figures = wrk(port, paths, workdir, seconds, auth)
    finally:
        written = profiler.stop() if profiler is not None else None
    spent = sum(measure.cpu_seconds(p) for p in tree(serving)) - spent
    if written is not None:
        say(measure.profile_summary(written))
    answers = figures[0] * seconds
    return figures, elsewhere.cores, spent / answers * 1e6 if answers else math.nan


def _over_time(latencies: list[tuple[float, float]], window_s: float = 0.25
               ) -> dict[str, float | str]:
    """Where the tail is in time: how many windows of ``window_s`` had a p99 over the target,
    and the worst ones (start s: p99 ms). A tail spread over every window is the load; one
    in a few windows, at a steady period, is a pause (a flush, a collection)."""
    windows: dict[int, list[float]] = {}
    for due, ms in latencies:
        windows.setdefault(int(due / window_s), []).append(ms)
    p99s = {w: report.percentile(sorted(v), 0.99) for w, v in windows.items()}
    worst = sorted(p99s.items(), key=lambda kv: -kv[1])[:5]
    return {"windows_over_target": f"{sum(p > LVMS_P99_MS for p in p99s.values())}"
                                   f"/{len(p99s)}",
            "worst_windows": " ".join(f"{w * window_s:.2f}s:{p:.0f}ms" for w, p in worst)}


def run(workers_list: list[int], seconds: float, codes: int, keep: bool,
        profile: Path | None = None) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench.http needs wrk (apt-get install wrk)")
    results: list[Result] = []
    command = "python -m bench.http"
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    with harness.workdir("bench-http-", keep) as workdir:
        for workers in workers_list:
            data = workdir / f"data-w{workers}"
            server = ServerProcess(
                [PYTHON, "-m", "pharmatrace_cli", "serve", "--dev", "--insecure", "--data",
                 str(data), "--host", HOST, "--issue-port", "0", "--verify-port", "0",
                 "--metrics-port", "0", "--http-port", "0", "--workers", str(workers),
                 "--public-rate", "1000000000", "--grace", "2"], workdir, f"pharmatrace-w{workers}")
            hello = ServerProcess([PYTHON, "-m", "bench.hello_http", "--host", HOST,
                                   "--workers", str(workers)], workdir, f"hello-w{workers}")
            with server, hello:
                say(f"bench http: {workers} worker(s): {codes:,} packs")
                fixture = Fixture(f"{HOST}:{server.ports['issue']}", codes)
                port = server.ports["http"]
                auth = f"Bearer {fixture.token}"
                wrk(port, fixture.check_paths()[:1000], workdir, 1)  # warm every worker
                pids = (server.pid, hello.pid)
                busy: dict[str, float] = {}
                cpu: dict[str, float] = {}
                (base, base_p99, _), busy["hello"], cpu["hello"] = _measure(
                    pids, hello.pid, hello.ports["http"], ["/hello"], workdir, seconds)
                # What the check page's bytes alone cost the same stack: a static page as long.
                page_bytes = _length(port, fixture.check_paths()[0])
                (static, _, _), _, cpu["static_page"] = _measure(
                    pids, hello.pid, hello.ports["http"], [f"/page/{page_bytes}"], workdir,
                    seconds)
                measured = {}
                # The resolver twice over the same packs: first each answer made (at most a
                # few visits a pack in a run), then each kept from the run before.
                for name, paths, key in (("resolver", fixture.resolver_paths(), ""),
                                         ("resolver_kept", fixture.resolver_paths(), ""),
                                         ("check", fixture.check_paths(), ""),
                                         ("lvms", fixture.lvms_paths(), auth)):
                    measured[name], busy[name], cpu[name] = _measure(
                        pids, server.pid, port, paths, workdir, seconds, key,
                        profile / f"{name}-w{workers}.txt" if profile else None)
                for name, title in (("resolver", "resolver redirects (307)"),
                                    ("resolver_kept", "resolver redirects (307), answers kept"),
                                    ("check", "check-page views")):
                    rate, p99, errors = measured[name]
                    extra = {} if name != "check" else {
                        "page_bytes": page_bytes, "static_page_ratio": static / base,
                        "static_page_cpu_us": cpu["static_page"]}
                    results.append(Result(
                        "http", f"{title}, {workers} worker(s)", "req/s", rate, base,
                        "hello-world, same stack", key=f"http.{name}.w{workers}",
                        targets=[Target("min_ratio", RATIO_TARGET)], command=command,
                        elsewhere=max(busy[name], busy["hello"]),
                        details={"p99_ms": p99, "wrong_status": errors,
                                 "baseline_p99_ms": base_p99, "server_cpu_us": cpu[name],
                                 "baseline_cpu_us": cpu["hello"], **extra}))
                lvms_max, lvms_p99_max, errors = measured["lvms"]
                results.append(Result(
                    "http", f"LVMS verifications, {workers} worker(s)", "req/s", lvms_max, base,
                    "hello-world, same stack", key=f"http.lvms.w{workers}", command=command,
                    elsewhere=max(busy["lvms"], busy["hello"]),
                    details={"p99_ms": lvms_p99_max, "wrong_status": errors,
                             "server_cpu_us": cpu["lvms"]}))
                measure.settle()
                requests = get_requests(HOST, port, fixture.lvms_paths(), {"Authorization": auth})
                spent = sum(measure.cpu_seconds(p) for p in tree(server.pid))
                with _Busy(server.pid, hello.pid) as elsewhere:
                    loaded = open_loop(HOST, port, requests, lvms_max / 2, seconds, CONNECTIONS)
                spent = sum(measure.cpu_seconds(p) for p in tree(server.pid)) - spent
                latencies = loaded.latencies
                ordered = sorted(ms for _, ms in latencies)
                lag = report.percentile(sorted(loaded.send_lags_ms), 0.99)
                if lag > LVMS_P99_MS / 4:
                    say(f"  the load itself sent late (p99 {lag:.1f} ms behind time, "
                        f"{elsewhere.cores:.2f} cores busy elsewhere): the LVMS tail below is "
                        "the machine's, not the server's; run it again on a quiet machine")
                results.append(Result(
                    "http", f"LVMS p99 at {lvms_max / 2:,.0f}/s (half max), {workers} worker(s)",
                    "ms", report.percentile(ordered, 0.99), key=f"http.lvms_p99.w{workers}",
                    targets=[Target("max", LVMS_P99_MS)], command=command,
                    elsewhere=elsewhere.cores,
                    details={"p50_ms": report.percentile(ordered, 0.50),
                             "answers": len(ordered), "wrong_status": loaded.wrong_status,
                             "unanswered": loaded.unanswered,
                             "client_cores": loaded.client_cores,
                             "send_lag_p99_ms": lag,
                             "server_cpu_us": spent / len(ordered) * 1e6 if ordered
                             else math.nan,
                             **_over_time(latencies)}))
    return results


def details(results: list[Result]) -> str:
    """Each result's details (p99s, wrong answers, where the LVMS tail is), one line each."""
    return "\n".join(f"  {r.name}: " + ", ".join(
        f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.details.items())
        for r in results if r.details)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--codes", type=int, default=20_000)
    parser.add_argument("--json")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", type=Path,
                        help="py-spy the server and its workers in each measured window into DIR")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="wait up to S seconds before each measurement for other jobs to "
                        "leave the cores idle")
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()
    measure.quiet_wait_s = args.quiet_wait
    results = run([int(w) for w in args.workers.split(",")], args.seconds, args.codes, args.keep,
                  args.profile)
    print(report.table(results))
    print(details(results))
    if args.json:
        report.write_json(Path(args.json), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
