"""The lifecycle benchmarks' rig: a server with the bench product, batch and parties, a client of
its services, a window that measures CPU, and the raw LMDB baseline of read-modify-writes."""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import lmdb  # the raw baselines, beside (not through) tracecore.ledger
from pharmatrace.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    issuance_pb2,
    issuance_pb2_grpc,
    lifecycle_pb2_grpc,
    trace_pb2_grpc,
)
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb

from bench.harness import (
    CHANNEL_OPTIONS,
    DEV_TENANT,
    HOST,
    pharmatrace_server,
)
from bench.measure import busy_cpu_seconds, cpu_seconds, descendants
from tracecore.codes import parse
from tracecore.ledger.records import CODE_RECORD_SIZE, CodeRecord
from tracecore.status import Status

GTIN = "09501101530003"

LOT = "BENCH-LC-1"

MANUFACTURED = "2025-01-15"

EXPIRES = "2030-12-31"

PARTIES = (("PLANT", cpb.PARTY_KIND_PLANT, "110105"),
           ("DIST", cpb.PARTY_KIND_DISTRIBUTOR, "440305"),
           ("WH", cpb.PARTY_KIND_DISTRIBUTOR, "310115"),
           ("PHARM", cpb.PARTY_KIND_PHARMACY, "440106"))

MIB = 1024

# The code record layout of tracecore.ledger.records, restated for the raw baseline.
_RAW_CODE = struct.Struct("<BBBxHxxIIIIIqqQ")
assert _RAW_CODE.size == CODE_RECORD_SIZE



class Client:
    """Stubs over one channel to the issuance port, and one to the verification port."""

    def __init__(self, ports: dict[str, int]) -> None:
        self._issue = grpc.insecure_channel(f"{HOST}:{ports['issue']}", options=CHANNEL_OPTIONS)
        self._verify = grpc.insecure_channel(f"{HOST}:{ports['verify']}",
                                             options=CHANNEL_OPTIONS)
        self.admin = admin_pb2_grpc.AdminStub(self._issue)
        self.issuance = issuance_pb2_grpc.CodeIssuanceStub(self._issue)
        self.lifecycle = lifecycle_pb2_grpc.LifecycleStub(self._issue)
        self.trace = trace_pb2_grpc.TraceStub(self._verify)

    def close(self) -> None:
        self._issue.close()
        self._verify.close()

    def setup(self) -> None:
        """The bench product, its batch and the parties, in the development tenant."""
        self.admin.RegisterProduct(admin_pb2.RegisterProductRequest(
            tenant=DEV_TENANT,
            product=cpb.Product(gtin=GTIN, scheme=cpb.SCHEME_GS1, name="Benchmarkol 10 mg",
                                form="tablet", strength="10 mg", pack_size=30),
        ), timeout=30)
        self.admin.AddBatch(admin_pb2.AddBatchRequest(
            tenant=DEV_TENANT,
            batch=cpb.Batch(product=GTIN, lot=LOT, manufactured_on=MANUFACTURED,
                            expires_on=EXPIRES,
                            materials=[cpb.MaterialLot(material="api", supplier="ACME",
                                                       supplier_lot="S-1")]),
        ), timeout=30)
        for party_id, kind, region in PARTIES:
            self.admin.AddParty(admin_pb2.AddPartyRequest(
                tenant=DEV_TENANT,
                party=cpb.Party(party_id=party_id, name=party_id, kind=kind, region=region),
            ), timeout=30)

    def pool(self, request_id: str, count: int,
             level: cpb.PackagingLevel.ValueType = cpb.PACKAGING_LEVEL_UNIT,
             keep: bool = True) -> list[str]:
        """RequestCodes; the codes as HRI text when ``keep``, else just counted."""
        request = issuance_pb2.RequestCodesRequest(
            tenant=DEV_TENANT, product=GTIN, lot=LOT, count=count, request_id=request_id,
            level=level)
        out: list[str] = []
        received = 0
        prefix = f"(01){GTIN}(21)"
        for chunk in self.issuance.RequestCodes(request, timeout=120 + count / 20_000):
            received += len(chunk.serials)
            if keep:
                out.extend(prefix + s for s in chunk.serials)
        if received != count:
            raise RuntimeError(f"received {received:,} codes of {count:,}")
        return out

    def call(self, method: str, request: Any) -> lpb.LifecycleResponse:
        """A typed Lifecycle RPC that must apply."""
        response: lpb.LifecycleResponse = getattr(self.lifecycle, method)(request, timeout=120)
        if not response.applied or response.failures:
            raise RuntimeError(f"{method} was not applied: {response.failures[:3]}")
        return response



def ctx(party: str) -> lpb.EventContext:
    return lpb.EventContext(party_id=party)



@contextlib.contextmanager
def lifecycle_server(tmp: Path, name: str, workers: int) -> Iterator[Any]:
    with pharmatrace_server(tmp / f"data-{name}", tmp, workers=workers, name=name) as server:
        client = Client(server.ports)
        try:
            client.setup()
            yield server, client
        finally:
            client.close()



class Window:
    """CPU spent during a ``with`` block: by the server's processes, by this client, and by the
    whole machine. Other work on the machine inflates wall-clock figures; ``others_cores`` says
    how much there was."""

    def __init__(self, pid: int) -> None:
        self._pids = [pid, *descendants(pid)]
        self.wall_s = self.server_cpu_s = self.client_cpu_s = self.busy_s = 0.0

    def __enter__(self) -> Window:
        self._server0 = sum(cpu_seconds(p) for p in self._pids)
        self._busy0 = busy_cpu_seconds()
        self._client0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall0
        self.client_cpu_s = time.process_time() - self._client0
        self.busy_s = busy_cpu_seconds() - self._busy0
        self.server_cpu_s = sum(cpu_seconds(p) for p in self._pids) - self._server0

    def as_dict(self) -> dict[str, float]:
        wall = self.wall_s or float("nan")
        return {
            "wall_s": self.wall_s, "server_cpu_s": self.server_cpu_s,
            "client_cpu_s": self.client_cpu_s,
            "machine_busy_cores": self.busy_s / wall,
            "others_cores": max(0.0, self.busy_s - self.server_cpu_s - self.client_cpu_s) / wall,
        }



def code_keys(texts: Sequence[str]) -> list[bytes]:
    return [parse(t).code.key() for t in texts]



def raw_rmw_seconds(keys: Sequence[bytes], directory: Path, ledger_size: int = 0) -> float:
    """Seconds for one LMDB transaction that reads, unpacks, changes, packs and writes back the
    record of every key (in the order given), committed with fsync. The records are stored first,
    untimed, in a fresh environment, with random others up to ``ledger_size`` records so that the
    commit writes as many pages as the server's ledger of that size would."""
    value = CodeRecord(status=Status.ISSUED, level=1, key_id=1, product_ref=1, batch_ref=1,
                       pool_ref=1, issued_at_ms=1, updated_at_ms=1).pack()
    directory.mkdir(parents=True)
    env = lmdb.open(str(directory), map_size=64 << 30, max_dbs=2, readahead=False, sync=True,
                    metasync=True)
    try:
        db = env.open_db(b"codes")
        others = max(0, ledger_size - len(keys))
        prefix = keys[0][:15] if keys else b"G"
        filler = (prefix + os.urandom(8).hex().upper().encode() for _ in range(others))
        with env.begin(write=True, db=db) as txn:
            txn.cursor().putmulti(sorted([*((k, value) for k in keys),
                                          *((k, value) for k in filler)]))
        unpack, pack = _RAW_CODE.unpack, _RAW_CODE.pack
        started = time.perf_counter()
        with env.begin(write=True, db=db) as txn:
            get, put = txn.get, txn.put
            for key in keys:
                fields = list(unpack(get(key, b"")))
                fields[0] = Status.ACTIVE.value
                fields[2] |= 1
                fields[7] = 2
                put(key, pack(*fields))
        return time.perf_counter() - started
    finally:
        env.close()
