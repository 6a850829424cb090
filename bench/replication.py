"""Replication over NATS JetStream, all in one run against a real `nats-server`:

- write throughput (unary writes, one commit each; and codes of pools) with ``--replicated-commit``
  beside the same writes committed locally only, on the same machine;
- replica apply rate: a replica started after the writes catches up (changes/s, codes/s);
- replication lag under load: while a writer issues small pools, the time from a pool's answer
  on the writer until its last code verifies GENUINE on the replica (p50 / p99);
- verification on a replica beside the writer's own: VerifyBatch of the same 10,000 codes, one
  caller, each server with one verification worker.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import grpc
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb

from bench.harness import CHANNEL_OPTIONS, DEV_TENANT, HOST, PYTHON, ServerProcess, workdir
from bench.report import say

GTIN = "09501101530003"
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _nats(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    store = directory / "jetstream"
    store.mkdir()
    log = (directory / "nats.log").open("ab")
    process = subprocess.Popen([NATS, "-js", "-sd", str(store), "-a", HOST, "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return process, f"nats://{HOST}:{port}"
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not start") from None
            time.sleep(0.05)


def _writer(directory: Path, name: str, url: str, replicated: bool) -> ServerProcess:
    argv = [PYTHON, "-m", "pharmatrace_cli", "serve", "--dev", "--insecure",
            "--data", str(directory / name), "--host", HOST, "--issue-port", "0",
            "--verify-port", "0", "--metrics-port", "0", "--workers", "1", "--grace", "2",
            "--nats", url]
    return ServerProcess([*argv, "--replicated-commit"] if replicated else argv, directory, name)


def _replica(directory: Path, url: str) -> ServerProcess:
    return ServerProcess(
        [PYTHON, "-m", "pharmatrace_cli", "replica", "--nats", url, "--data",
         str(directory / "replica"), "--tenants", DEV_TENANT, "--dev", "--host", HOST,
         "--verify-port", "0", "--metrics-port", "0", "--workers", "1"], directory, "replica")


def _setup(channel: grpc.Channel) -> None:
    admin = admin_pb2_grpc.AdminStub(channel)
    admin.RegisterProduct(apb.RegisterProductRequest(tenant=DEV_TENANT, product=cpb.Product(
        gtin=GTIN, name="Bench product")), timeout=30)


def _unary_writes(channel: grpc.Channel, n: int, prefix: str) -> float:
    """AddBatch calls one after another (each one commit): calls per second."""
    admin = admin_pb2_grpc.AdminStub(channel)
    started = time.perf_counter()
    for i in range(n):
        admin.AddBatch(apb.AddBatchRequest(tenant=DEV_TENANT, batch=cpb.Batch(
            product=GTIN, lot=f"{prefix}{i}", expires_on="2030-01-31")), timeout=30)
    return n / (time.perf_counter() - started)


def _pool(channel: grpc.Channel, request_id: str, count: int) -> list[str]:
    chunks = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(
        ipb.RequestCodesRequest(tenant=DEV_TENANT, product=GTIN, count=count,
                                request_id=request_id), timeout=300)
    return [s for chunk in chunks for s in chunk.serials]


def _codes_per_s(channel: grpc.Channel, prefix: str, count: int) -> float:
    started = time.perf_counter()
    _pool(channel, f"{prefix}-pool", count)
    return count / (time.perf_counter() - started)


def _genuine(verify: verification_pb2_grpc.VerificationStub, serial: str) -> bool:
    response = verify.VerifyBatch(vpb.VerifyBatchRequest(
        tenant=DEV_TENANT, codes=[f"(01){GTIN}(21){serial}"]), timeout=30)
    return list(response.verdicts) == [vpb.VERDICT_GENUINE]


def run(writes: int = 300, codes: int = 200_000, lag_samples: int = 100,
        keep: bool = False) -> dict[str, float]:
    results: dict[str, float] = {}
    with workdir("bench-replication-", keep) as directory:
        nats, url = _nats(directory)
        try:
            for replicated in (False, True):
                label = "replicated" if replicated else "local"
                with _writer(directory, f"writer-{label}", url, replicated) as writer, \
                        grpc.insecure_channel(f"{HOST}:{writer.ports['issue']}",
                                              options=CHANNEL_OPTIONS) as channel:
                    _setup(channel)
                    results[f"writes/s {label}"] = _unary_writes(channel, writes, label)
                    results[f"codes/s {label}"] = _codes_per_s(channel, label, codes)
                    if replicated:
                        continue
                    # The local writer's tenant, replicated: apply rate, then lag under load.
                    results.update(_replica_figures(directory, url, channel, lag_samples,
                                                    f"{HOST}:{writer.ports['verify']}"))
        finally:
            nats.terminate()
            nats.wait(20)
    results.update(apply_rate(codes))
    return results


def _batch_rate(address: str, codes: list[str], seconds: float = 3.0) -> float:
    """Codes/s one caller gets from VerifyBatch of ``codes`` over and over, for ``seconds``."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = verification_pb2_grpc.VerificationStub(channel)
        request = vpb.VerifyBatchRequest(tenant=DEV_TENANT, codes=codes)
        stub.VerifyBatch(request, timeout=60)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            answer = stub.VerifyBatch(request, timeout=60)
            assert set(answer.verdicts) == {vpb.VERDICT_GENUINE}
            done += len(codes)
        return done / (time.perf_counter() - started)


def _replica_figures(directory: Path, url: str, channel: grpc.Channel, samples: int,
                     writer_verify: str) -> dict[str, float]:
    from bench.replication_status import newest_commit
    from replica_svc.replica import read_status

    target = newest_commit(url, DEV_TENANT)
    started = time.perf_counter()
    replica = _replica(directory, url).start()
    try:
        root = directory / "replica"
        while True:
            try:
                tenants = read_status(root)["tenants"]
                assert isinstance(tenants, list)
                if tenants and tenants[0]["applied_commit"] >= target:
                    status = tenants[0]
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        out = {"replica catch-up s (process start + snapshot + stream)": elapsed,
               "replica changes applied/s (over that catch-up)":
                   status["applied_changes"] / elapsed}
        stop = threading.Event()

        def background() -> None:
            i = 0
            while not stop.is_set():
                _pool(channel, f"bg-{i}", 2000)
                i += 1

        loader = threading.Thread(target=background, daemon=True)
        loader.start()
        lags: list[float] = []
        with grpc.insecure_channel(f"{HOST}:{replica.ports['verify']}") as rchannel:
            verify = verification_pb2_grpc.VerificationStub(rchannel)
            for i in range(samples):
                serial = _pool(channel, f"lag-{i}", 10)[-1]
                answered = time.perf_counter()
                while not _genuine(verify, serial):
                    time.sleep(0.002)
                lags.append(time.perf_counter() - answered)
        stop.set()
        loader.join(60)
        lags.sort()
        out["lag p50 ms (writer answer -> GENUINE on replica)"] = 1000 * statistics.median(lags)
        out["lag p99 ms"] = 1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))]
        codes = [f"(01){GTIN}(21){serial}" for serial in _pool(channel, "verify-rate", 10_000)]
        with grpc.insecure_channel(f"{HOST}:{replica.ports['verify']}") as rchannel:
            while not _genuine(verification_pb2_grpc.VerificationStub(rchannel),
                               codes[-1].rsplit("(21)", 1)[1]):
                time.sleep(0.01)
        out["VerifyBatch codes/s, writer (1 worker)"] = _batch_rate(writer_verify, codes)
        out["VerifyBatch codes/s, replica (1 worker)"] = _batch_rate(
            f"{HOST}:{replica.ports['verify']}", codes)
        return out
    finally:
        replica.stop()


def apply_rate(codes: int, chunk: int = 10_000) -> dict[str, float]:
    """In-process: a replica's copy applying the change records of ``codes`` codes issued in
    ``chunk``-code commits (decode included), beside the writer committing the same codes."""
    import tempfile

    from pharmatrace.v1 import common_pb2

    from tracecore.ledger.code_keys import CodeKeys
    from tracecore.ledger.store import Ledger, PoolRequest
    from tracecore.replication.apply import ReplicaLedger
    from tracecore.replication.capture import ChangeCapture
    from tracecore.replication.changes import Change

    def issue(ledger: Ledger) -> float:
        ledger.register_product(common_pb2.Product(gtin=GTIN, name="Bench"), 1)
        ledger.open_pool(PoolRequest("R", GTIN, "", 1, codes), key_id=1, now_ms=1)
        started = time.perf_counter()
        for position in range(0, codes, chunk):
            serials = [f"S{i:012d}" for i in range(position, min(codes, position + chunk))]
            ledger.append_pool_codes("R", position, serials, 1, 1, lambda n: [])
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        root = Path(tmp)
        codes_at_rest = CodeKeys(bytes(32), "bench")
        plain = Ledger(root / "plain", tenant="bench", codes=codes_at_rest)
        plain_s = issue(plain)
        plain.close()
        ledger = Ledger(root / "writer", tenant="bench", codes=codes_at_rest)
        capture = ChangeCapture(ledger.env)
        (root / "copy").mkdir()
        ledger.env.copy_to(root / "copy")
        write_s = issue(ledger)
        records = capture.pending(0, 1 << 40)
        ledger.close()
        replica = ReplicaLedger(root / "copy", "bench")
        replica.start_from_snapshot(0)
        started = time.perf_counter()
        for i in range(0, len(records), 16):
            batch = [(Change.decode(data), seq) for seq, data in records[i:i + 16]]
            replica.apply(batch, batch[-1][1])
        apply_s = time.perf_counter() - started
        replica.close()
    return {"writer commits codes/s in-process, no capture": codes / plain_s,
            "writer commits codes/s in-process, capture on": codes / write_s,
            "replica applies codes/s in-process (decode included)": codes / apply_s,
            f"replica commits applied/s ({chunk:,} codes each)": len(records) / apply_s}


def report(results: dict[str, float]) -> None:
    for name, value in results.items():
        say(f"  {name:<52} {value:>12,.1f}")
    local, replicated = results["writes/s local"], results["writes/s replicated"]
    say(f"  {'replicated / local commit (unary writes)':<52} {replicated / local:>12.2f}")
    say(f"  {'replicated / local commit (codes)':<52} "
        f"{results['codes/s replicated'] / results['codes/s local']:>12.2f}")
    replica = results["VerifyBatch codes/s, replica (1 worker)"]
    say(f"  {'replica / writer VerifyBatch':<52} "
        f"{replica / results['VerifyBatch codes/s, writer (1 worker)']:>12.2f}")
