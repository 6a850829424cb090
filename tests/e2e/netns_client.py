"""The client side of the namespace cluster test, run inside the client's namespace:

- ``load RUN``: issues codes in small requests to the writer named in RUN/writer.addr until
  RUN/stop appears, appending each acknowledged request's serials to RUN/acks.jsonl, and checks
  the codes just acknowledged on the replicas named in RUN/replicas.json between writes, naming
  the write's stream sequence (read-your-writes) and moving on to the next replica when one does
  not answer, as a client would; the counts so far are in RUN/load.json after every round;
- ``ready URL``: waits until the NATS cluster's JetStream answers;
- ``stream URL``: the tenant's stream: last sequence and the codes its changes put;
- ``verify ADDR FILE``: the verdicts ADDR gives for the serials in FILE;
- ``forward ADDRESS PORT TARGET``: passes connections to ADDRESS:PORT on to 127.0.0.1:TARGET, as
  a node's front proxy does (a `--dev` server, without authentication, listens on loopback only).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import nats
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, issuance_pb2_grpc, verification_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import issuance_pb2 as ipb
from pharmatrace.v1 import verification_pb2 as vpb

from replica_svc.streams import SEQ, servers, stream_name
from tracecore.keys import KeySource
from tracecore.ledger.code_keys import CodeKeys
from tracecore.replication.changes import PUT, Assembler, Change
from tracecore.replication.sealing import Sealing, part_context

TENANT = "demo"
#: The nodes run with --dev: their key-encryption key is the development one.
SEALING = Sealing.of(KeySource.dev())
#: The ledger keeps codes encrypted; the stream carries its writes as they are.
CODES = CodeKeys.of(KeySource.dev(), TENANT)
GTIN = "09501101530003"
PER_REQUEST = 20
PAUSE_S = 0.1
CHECK_TIMEOUT_S = 5.0


def _issue(addr: str, lot: str, tenant: str = TENANT) -> list[str]:
    return _issue_with_seq(addr, lot, tenant)[0]


def _issue_with_seq(addr: str, lot: str, tenant: str = TENANT) -> tuple[list[str], str]:
    """Serials issued and the stream sequence holding them (the answer's x-min-seq)."""
    with grpc.insecure_channel(addr) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        try:
            admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
                gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=10)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
            product=GTIN, lot=lot, expires_on="2029-06-30")), timeout=10)
        call = issuance_pb2_grpc.CodeIssuanceStub(channel).RequestCodes(
            ipb.RequestCodesRequest(tenant=tenant, product=GTIN, lot=lot, count=PER_REQUEST,
                                    request_id=f"R-{lot}"), timeout=10)
        serials = [s for chunk in call for s in chunk.serials]
        return serials, str(dict(call.trailing_metadata() or ()).get("x-min-seq", ""))


def _verdicts(addr: str, serials: list[str], min_seq: str = "",
              timeout: float = 20) -> list[int]:
    with grpc.insecure_channel(addr) as channel:
        response = verification_pb2_grpc.VerificationStub(channel).VerifyBatch(
            vpb.VerifyBatchRequest(tenant=TENANT, codes=[f"(01){GTIN}(21){s}" for s in serials]),
            timeout=timeout, metadata=(("x-min-seq", min_seq),) if min_seq else ())
    return list(response.verdicts)


def load(run: Path) -> None:
    acks = (run / "acks.jsonl").open("a")
    counts: Counter[str] = Counter()
    recent: list[str] = []
    recent_seq = ""
    number = 0
    while not (run / "stop").exists():
        number += 1
        lot = f"N{number}"
        writer = (run / "writer.addr").read_text().strip()
        try:
            serials, seq = _issue_with_seq(writer, lot)
            acks.write(json.dumps({"writer": writer, "serials": serials}) + "\n")
            acks.flush()
            os.fsync(acks.fileno())
            counts["writes acknowledged"] += 1
            recent, recent_seq = serials, seq
        except grpc.RpcError as exc:
            counts[f"writes failed {exc.code().name}"] += 1
            time.sleep(0.3)
        replicas = json.loads((run / "replicas.json").read_text())
        if recent and replicas:
            _check(replicas, number, recent, recent_seq, counts)
        _write_json(run / "load.json", counts)
        time.sleep(PAUSE_S)
    acks.close()
    _write_json(run / "load.json", counts)


def _check(replicas: list[str], number: int, serials: list[str], min_seq: str,
           counts: Counter[str]) -> None:
    """Checks SERIALS on one replica, starting with the round's own, trying the next on failure."""
    for i in range(len(replicas)):
        addr = replicas[(number + i) % len(replicas)]
        try:
            # Read-your-writes: the replica answers once it holds the write, or UNAVAILABLE.
            verdicts = _verdicts(addr, serials, min_seq, CHECK_TIMEOUT_S)
        except grpc.RpcError as exc:
            counts[f"checks failed {exc.code().name}"] += 1
            continue
        genuine = sum(v == vpb.VERDICT_GENUINE for v in verdicts)
        counts["checks genuine"] += genuine
        counts["checks not genuine"] += len(verdicts) - genuine
        return


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


async def _ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            nc = await nats.connect(servers(url), connect_timeout=2, allow_reconnect=False)
            try:
                await nc.jetstream().account_info()
                return
            finally:
                await nc.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _stream(url: str) -> dict[str, object]:
    nc = await nats.connect(servers(url))
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream_name(TENANT))
        assembler = Assembler()
        codes: list[str] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream_name(TENANT), seq)
            h = msg.headers or {}
            if SEQ not in h:
                continue
            seq, part, parts = int(h[SEQ]), int(h["Pt-Part"]), int(h["Pt-Parts"])
            piece = SEALING.open(TENANT, int(h["Pt-Epoch"]), part_context(seq, part, parts),
                                 msg.data or b"")
            whole = assembler.add(seq, part, parts, piece)
            if whole is not None:
                codes += [CODES.plain(key).decode()[15:]
                          for kind, db, key, _ in Change.decode(whole).ops
                          if kind == PUT and db == "codes"]
        return {"last_seq": info.state.last_seq, "replicas": info.config.num_replicas,
                "codes": codes}
    finally:
        await nc.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _forward(address: str, port: int, target: int) -> None:
    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(accepted, address, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    action = argv[0]
    if action == "load":
        load(Path(argv[1]))
    elif action == "ready":
        asyncio.run(_ready(argv[1]))
    elif action == "stream":
        print(json.dumps(asyncio.run(_stream(argv[1]))))
    elif action == "forward":
        asyncio.run(_forward(argv[1], int(argv[2]), int(argv[3])))
    elif action == "verify":
        serials = json.loads(Path(argv[2]).read_text())
        verdicts: list[int] = []
        for start in range(0, len(serials), 500):
            verdicts += _verdicts(argv[1], serials[start:start + 500])
        print(json.dumps(dict(Counter(vpb.Verdict.Name(v) for v in verdicts))))


if __name__ == "__main__":
    main(sys.argv[1:])
