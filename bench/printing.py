"""Print jobs in-process: symbols per second for each output kind, beside a same-run baseline.

Each row turns a pool's serials into the output kind, label data included (what `pharmatrace
codes print` does once the codes have arrived), on one core, best of three. The baselines do the
least work that writes the same thing:

- ZPL, CSV: one f-string (ZPL) or one ``csv.writer`` row (CSV) per code holding only its serial;
- SVG: zxing-cpp's own ``create_barcode`` + ``to_svg`` (zint's SVG writer) of the same data;
- PNG: zxing-cpp ``create_barcode`` + ``to_image`` of the same data, not yet encoded as PNG;
- sealing: AES-256-GCM of the same bytes in 1 MiB chunks, with no signature or tar;
- over the RPC (``PrintJobs.PrintPool`` of a ZPL job from a `pharmatrace serve` with one
  verification worker, the stream drained by a client): the same job's labels rendered and
  sealed in-process (``JobWriter`` into a ``Sealer``), the same serials, lot and expiry.

Goals (symbols per second, this 2-core machine): ZPL and CSV >= 200,000, SVG >= 10,000,
PNG >= 3,000.

    python -m bench.printing [--n N] [--rpc-n N] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import zxingcpp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tracecore.codes import Scheme
from tracecore.printing import labels, seal, sheet, symbols, vdp, zpl
from tracecore.printing.job import JobWriter, Kind, TarSink
from tracecore.printing.labels import Label, Symbology

GTIN = "09501101530003"
DRUG_ID = "8612345"
LOT = "LOT-2025-0042"
EXPIRY = "271231"
DEFAULT_N = 200_000
DEFAULT_RPC_N = 100_000
GOALS = {Kind.ZPL: 200_000, Kind.CSV: 200_000, Kind.SVG: 10_000, Kind.PNG: 3_000}
#: Share of ``n`` each kind renders: the slow kinds render fewer symbols.
_SHARE = {Kind.ZPL: 1.0, Kind.CSV: 1.0, Kind.SVG: 0.1, Kind.PNG: 0.03, Kind.PDF: 0.01}
_REPEAT = 3
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Row(TypedDict):
    kind: str
    symbology: str
    symbols: int
    per_s: float
    baseline_per_s: float | None
    ratio: float | None
    goal_per_s: int | None


def run(n: int = DEFAULT_N) -> list[Row]:
    rng = random.Random(42)
    gs1_serials = ["".join(rng.choice(_ALPHABET) for _ in range(20)) for _ in range(n)]
    nmpa_serials = ["".join(rng.choice("0123456789") for _ in range(13)) for _ in range(n)]
    rows: list[Row] = []
    for kind in (Kind.ZPL, Kind.CSV, Kind.SVG, Kind.PNG, Kind.PDF):
        count = max(100, int(n * _SHARE[kind]))
        symbologies = ((Symbology.GS1_DATAMATRIX, Symbology.DIGITAL_LINK_QR, Symbology.CODE128)
                       if kind.per_symbol else (Symbology.GS1_DATAMATRIX,))
        for symbology in symbologies:
            serials = (nmpa_serials if symbology is Symbology.CODE128 else gs1_serials)[:count]
            ours = _best(functools.partial(_render, kind, symbology, serials), count)
            base = _baseline(kind, symbology, serials)
            rows.append(Row(kind=kind.value, symbology=symbology.value, symbols=count,
                            per_s=ours, baseline_per_s=base,
                            ratio=ours / base if base else None,
                            goal_per_s=GOALS.get(kind) if symbology is Symbology.GS1_DATAMATRIX
                            else None))
    rows.append(_sealing(n))
    return rows


def table(rows: Sequence[Row]) -> str:
    head = (f"{'output':<8}{'symbology':<12}{'symbols':>9}{'per s':>12}{'baseline/s':>13}"
            f"{'ratio':>8}{'goal':>10}  ")
    lines = [head, "-" * len(head)]
    for row in rows:
        goal = row["goal_per_s"]
        verdict = "" if goal is None else ("ok" if row["per_s"] >= goal else "MISS")
        base = f"{row['baseline_per_s']:,.0f}" if row["baseline_per_s"] else "-"
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else "-"
        lines.append(f"{row['kind']:<8}{row['symbology']:<12}{row['symbols']:>9,}"
                     f"{row['per_s']:>12,.0f}{base:>13}{ratio:>8}"
                     f"{'' if goal is None else f'{goal:,}':>10}  {verdict}")
    return "\n".join(lines)


def _labels(symbology: Symbology, serials: list[str]) -> Sequence[Label]:
    if symbology is Symbology.CODE128:
        return labels.for_codes(Scheme.NMPA, DRUG_ID, serials)
    return labels.for_codes(Scheme.GS1, GTIN, serials, lot=LOT, expiry=EXPIRY,
                            symbology=symbology)


def _render(kind: Kind, symbology: Symbology, serials: list[str]) -> None:
    made = _labels(symbology, serials)
    if kind is Kind.ZPL:
        "".join(zpl.formats(made))
    elif kind is Kind.CSV:
        vdp.csv_text(made)
    elif kind is Kind.SVG:
        for label in made:
            symbols.svg(label)
    elif kind is Kind.PNG:
        for label in made:
            symbols.png(label)
    else:
        sheet.pdf(made)


def _baseline(kind: Kind, symbology: Symbology, serials: list[str]) -> float | None:
    count = len(serials)
    if kind is Kind.ZPL:
        def zpl_floor() -> None:
            "".join([f"^XA^FO20,20^BXN,4,200,0,0,1,#^FD#101{GTIN}21{s}^FS^XZ\n" for s in serials])
        return _best(zpl_floor, count)
    if kind is Kind.CSV:
        def csv_floor() -> None:
            csv.writer(io.StringIO()).writerows([i, s] for i, s in enumerate(serials))
        return _best(csv_floor, count)
    if kind is Kind.PDF:
        return None
    made = _labels(symbology, serials)
    encode = symbols.encode
    if kind is Kind.SVG:
        def svg_floor() -> None:
            for label in made:
                encode(label).to_svg()
        return _best(svg_floor, count)

    def png_floor() -> None:
        for label in made:
            encode(label).to_image(scale=4)
    return _best(png_floor, count)


def _sealing(n: int) -> Row:
    """A ZPL job of ``n`` labels sealed (tar + X25519/AES-256-GCM + Ed25519), in labels a
    second, beside AES-256-GCM alone over the same bytes."""
    data = "".join(zpl.formats(_labels(Symbology.GS1_DATAMATRIX, [
        f"{i:020d}" for i in range(n)]))).encode()
    line, issuer = seal.KeyPair.generate(), seal.KeyPair.generate()

    def sealed() -> None:
        out = io.BytesIO()
        sealer = seal.Sealer(out, line.public(), issuer)
        tar = TarSink(sealer)  # type: ignore[arg-type]
        tar.put("labels.zpl", data)
        tar.close()
        sealer.close()

    aead = AESGCM(os.urandom(32))

    def aes_only() -> None:
        for start in range(0, len(data), seal.CHUNK):
            aead.encrypt(os.urandom(12), data[start:start + seal.CHUNK], None)

    ours, base = _best(sealed, n), _best(aes_only, n)
    return Row(kind="sealed", symbology="zpl", symbols=n, per_s=ours, baseline_per_s=base,
               ratio=ours / base, goal_per_s=None)


def rpc(n: int) -> Row:
    """A pool of ``n`` codes printed as ZPL over PrintPool from a real server, in labels a
    second, beside the same job rendered and sealed in this process."""
    import grpc
    from pharmatrace.v1 import printing_pb2 as pb
    from pharmatrace.v1 import printing_pb2_grpc

    from bench import issue
    from bench.harness import CHANNEL_OPTIONS, DEV_TENANT, HOST, pharmatrace_server, workdir

    line = seal.KeyPair.generate()
    with workdir("printing") as tmp, pharmatrace_server(tmp / "data", tmp, workers=1) as server:
        issue.register_product(f"{HOST}:{server.ports['issue']}")
        serials = issue.request_pool(f"{HOST}:{server.ports['issue']}", n, "bench-print",
                                     keep=True).serials
        assert serials is not None
        request = pb.PrintPoolRequest(tenant=DEV_TENANT, request_id="bench-print",
                                      format=pb.PRINT_FORMAT_ZPL, line_key=line.public().to_pem())
        with grpc.insecure_channel(f"{HOST}:{server.ports['verify']}",
                                   options=CHANNEL_OPTIONS) as channel:
            stub = printing_pb2_grpc.PrintJobsStub(channel)

            def over_rpc() -> None:
                for _ in stub.PrintPool(request, timeout=60 + n / 10_000):
                    pass

            ours = _best(over_rpc, n)
    expiry = issue.EXPIRES[2:4] + issue.EXPIRES[5:7] + issue.EXPIRES[8:10]

    def in_process() -> None:
        sealer = seal.Sealer(io.BytesIO(), line.public(), line)
        tar = TarSink(sealer)  # type: ignore[arg-type]
        writer = JobWriter(Kind.ZPL, tar)
        for start in range(0, n, 4096):
            writer.add(labels.for_codes(Scheme.GS1, issue.GTIN, serials[start:start + 4096],
                                        lot=issue.LOT, expiry=expiry, start=start))
        writer.close()
        tar.close()
        sealer.close()

    base = _best(in_process, n)
    return Row(kind="rpc", symbology="zpl", symbols=n, per_s=ours, baseline_per_s=base,
               ratio=ours / base, goal_per_s=None)


def _best(fn: Callable[[], Any], count: int) -> float:
    best = float("inf")
    for _ in range(_REPEAT):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return count / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.printing", description=__doc__)
    parser.add_argument("--n", type=int, default=DEFAULT_N,
                        help="symbols of the ZPL and CSV rows; the others render a share")
    parser.add_argument("--rpc-n", type=int, default=DEFAULT_RPC_N,
                        help="codes of the pool printed over PrintPool (0: skip that row)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rows = run(args.n)
    if args.rpc_n:
        rows.append(rpc(args.rpc_n))
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"printing": rows, "zxing_cpp": zxingcpp.__version__
                       if hasattr(zxingcpp, "__version__") else None}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
