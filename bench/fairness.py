"""One tenant's large EPCIS import beside another tenant's small writes: the latency of tenant B's
writes (AddBatch, each one audited transaction) while tenant A imports a document of 10,000
events, beside the same writes with nothing else running, in the same run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench.epcisrest import commissioning, document
from bench.harness import DEV_TENANT
from bench.lifecycle_rig import GTIN, lifecycle_server
from bench.measure import settle
from bench.report import Result, Target, say

DEFAULT_EVENTS = 10_000
QUIET_WRITES = 200
OTHER = "fairness-b"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run(tmp: Path, events: int) -> list[Result]:
    with lifecycle_server(tmp, "fairness", 1) as (_, client):
        admin = client.admin
        admin.CreateTenant(apb.CreateTenantRequest(tenant=OTHER, name="Tenant B"), timeout=30)
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=OTHER, product=cpb.Product(
            gtin=GTIN, name="B's product")), timeout=30)
        lots = iter(range(1_000_000))

        def write() -> float:
            started = time.perf_counter()
            admin.AddBatch(apb.AddBatchRequest(tenant=OTHER, batch=cpb.Batch(
                product=GTIN, lot=f"B{next(lots)}", expires_on="2030-12-31")), timeout=60)
            return time.perf_counter() - started

        say(f"fairness: issuing {events:,} codes to tenant A ...")
        codes = client.pool("fairness-a", events)
        text = document([commissioning([code]) for code in codes])
        settle()
        quiet = [write() for _ in range(QUIET_WRITES)]

        say(f"fairness: tenant A imports {events:,} events ({len(text) / 1e6:.1f} MB) while "
            "tenant B writes ...")
        done = threading.Event()
        took: list[float] = []

        def import_document() -> None:
            started = time.perf_counter()
            answer = client.lifecycle.ImportEpcis(lpb.ImportEpcisRequest(
                tenant=DEV_TENANT, document=text), timeout=600)
            took.append(time.perf_counter() - started)
            if answer.failures:
                raise RuntimeError(f"ImportEpcis: {list(answer.failures)[:3]}")
            done.set()

        importer = threading.Thread(target=import_document)
        importer.start()
        during: list[float] = []
        while not done.is_set() and importer.is_alive():
            during.append(write())
        importer.join()
    if not took:
        raise RuntimeError("the import failed")
    say(f"fairness: the import took {took[0]:.2f} s; B wrote {len(during)} batches meanwhile")
    details = {"events": events, "import_seconds": took[0], "writes_during": len(during),
               "quiet_p50_ms": _percentile(quiet, 0.5) * 1000,
               "during_p50_ms": _percentile(during, 0.5) * 1000,
               "during_max_ms": max(during) * 1000}
    return [
        Result(bench="fairness", name=f"B's write p99 during A's import of {events:,} events",
               unit="ms", key="fairness.p99", figure=_percentile(during, 0.99) * 1000,
               baseline=_percentile(quiet, 0.99) * 1000, baseline_name="B's write p99 alone",
               targets=[Target("max", 20.0)], details=details),
    ]
