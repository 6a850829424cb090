"""The packaging line's end from the command line, against a real `pharmatrace serve`: SSCC
pools, print jobs of a pool in every output kind, and sealed jobs opened only by their line."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator

import grpc
import pytest
import zxingcpp
from pharmatrace.v1 import admin_pb2 as apb
from pharmatrace.v1 import admin_pb2_grpc, trace_pb2, trace_pb2_grpc
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import lifecycle_pb2 as lpb
from PIL import Image

from tests.e2e.test_cli import TRACEBACK
from tracecore import sscc
from tracecore.codes import Scheme, parse

pytestmark = pytest.mark.timeout(300)

GTIN = "09501101530003"
LOT = "LOT-PRINT"
PREFIX = "0614141"


@pytest.fixture(scope="module")
def plant(server) -> Iterator[str]:
    """A tenant with GS1 product 09501101530003 and batch LOT-PRINT (expiring 2029-06-30)."""
    tenant = f"print-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(server.issue_addr) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        admin.CreateTenant(apb.CreateTenantRequest(tenant=tenant, name="Print Pharma"), timeout=30)
        admin.RegisterProduct(apb.RegisterProductRequest(tenant=tenant, product=cpb.Product(
            gtin=GTIN, name="Amoxicillin 500 mg capsules")), timeout=30)
        admin.AddBatch(apb.AddBatchRequest(tenant=tenant, batch=cpb.Batch(
            product=GTIN, lot=LOT, expires_on="2029-06-30")), timeout=30)
    yield tenant


def _pool(cli, tenant: str, count: int) -> tuple[str, list[str]]:
    """A new pool's request id and its codes as element strings."""
    request_id = f"print-{uuid.uuid4().hex[:12]}"
    out = cli.cwd / f"{request_id}.txt"
    cli.ok("codes", "request", "--tenant", tenant, "--product", GTIN, "--lot", LOT, "--count",
           str(count), "--request-id", request_id, "--format", "element", "--out", str(out),
           "--quiet")
    return request_id, out.read_text().removesuffix("\n").split("\n")


def test_a_pool_printed_as_png_decodes_to_exactly_the_pool(cli, plant: str) -> None:
    """codes print --format png writes one PNG per code; each decodes to its code, in order."""
    request_id, codes = _pool(cli, plant, 30)
    out = cli.cwd / "png"
    cli.ok("codes", "print", "--tenant", plant, "--pool", request_id, "--format", "png",
           "--out", str(out))
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"{i:08d}.png" for i in range(30)]
    for path, code in zip(files, codes, strict=True):
        found = zxingcpp.read_barcodes(Image.open(path), text_mode=zxingcpp.TextMode.Plain)
        assert [f"{b.symbology_identifier}{b.text}" for b in found] == [code]


@pytest.mark.parametrize("kind", ["csv", "zpl", "pdf"])
def test_a_pool_printed_as_one_file_holds_every_code(cli, plant: str, kind: str) -> None:
    """CSV rows, ZPL formats and PDF pages: one label per code of the pool."""
    request_id, codes = _pool(cli, plant, 40)
    out = cli.cwd / f"labels.{kind}"
    cli.ok("codes", "print", "--tenant", plant, "--pool", request_id, "--format", kind,
           "--out", str(out))
    if kind == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert [parse(r["code"]).code for r in rows] == [parse(c).code for c in codes]
        assert {(r["lot"], r["expiry"]) for r in rows} == {(LOT, "290630")}
    elif kind == "zpl":
        assert out.read_text().count("^XA") == 40
    else:
        assert out.read_bytes().startswith(b"%PDF")


def test_sscc_pool_request_and_gs1_128_labels(cli, plant: str) -> None:
    """sscc prefix + sscc request give valid SSCCs; printed as ZPL they are GS1-128 labels."""
    cli.ok("sscc", "prefix", "--tenant", plant, PREFIX)
    listed = cli.ok("sscc", "prefix", "--tenant", plant).stdout.split()
    assert listed == [PREFIX]
    result = cli.ok("sscc", "request", "--tenant", plant, "--count", "12", "--request-id",
                    "pallets-1", "--extension-digit", "5", "--format", "digits")
    ssccs = result.stdout.split()
    assert len(set(ssccs)) == 12 and all(sscc.check(s)[:8] == "5" + PREFIX for s in ssccs)
    again = cli.ok("sscc", "request", "--tenant", plant, "--count", "12", "--request-id",
                   "pallets-1", "--extension-digit", "5", "--format", "epc-uri").stdout.split()
    assert [sscc.parse(uri) for uri in again] == ssccs
    as_codes = cli.ok("codes", "request", "--sscc", "--tenant", plant, "--count", "12",
                      "--request-id", "pallets-1", "--extension-digit", "5").stdout.split()
    assert as_codes == [sscc.render_hri(s) for s in ssccs]
    shown = cli.ok("sscc", "show", "--tenant", plant, f"]C100{ssccs[0]}").stdout
    assert shown.strip() == f"(00){ssccs[0]} allocated under company prefix {PREFIX}"
    never = cli("sscc", "show", "--tenant", plant, sscc.mint(PREFIX, 5, 99_999))
    assert never.returncode == 3 and "not allocated" in never.stdout
    out = cli.cwd / "pallets.zpl"
    cli.ok("codes", "print", "--tenant", plant, "--pool", "pallets-1", "--sscc", "--format",
           "zpl", "--out", str(out))
    assert [line[line.index(">;>800") + 6:][:18] for line in out.read_text().splitlines()] == ssccs


def test_a_sealed_job_opens_with_its_line_key_and_no_other(cli, plant: str) -> None:
    """line keygen, codes print --seal, codes unseal: the line gets the job, signed with the
    tenant's print-signing key; another line's key, another signer or a changed byte gets one
    clear line of refusal."""
    request_id, codes = _pool(cli, plant, 20)
    for name in ("line1", "line2"):
        cli.ok("line", "keygen", "--out", str(cli.cwd / name))
    assert (cli.cwd / "line1.key").stat().st_mode & 0o077 == 0
    job = cli.cwd / "job.sealed"
    cli.ok("codes", "print", "--tenant", plant, "--pool", request_id, "--format", "csv",
           "--out", str(job), "--seal", str(cli.cwd / "line1.pub"),
           "--signer-out", str(cli.cwd / "issuer.pub"))
    assert codes[0].encode()[3:] not in job.read_bytes()
    opened = cli.cwd / "opened"
    cli.ok("codes", "unseal", str(job), "--key", str(cli.cwd / "line1.key"), "--signer",
           str(cli.cwd / "issuer.pub"), "--out", str(opened))
    rows = list(csv.DictReader(io.StringIO((opened / "labels.csv").read_text())))
    assert [parse(r["code"]).code for r in rows] == [parse(c).code for c in codes]

    def refused(*args: str) -> str:
        result = cli(*args)
        assert result.returncode != 0 and not TRACEBACK.search(result.stderr), result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pharmatrace: refused: "), lines
        return lines[0]

    assert "another line key" in refused("codes", "unseal", str(job), "--key",
                                         str(cli.cwd / "line2.key"), "--out", str(opened))
    assert "another issuer" in refused("codes", "unseal", str(job), "--key",
                                       str(cli.cwd / "line1.key"), "--signer",
                                       str(cli.cwd / "line2.pub"), "--out", str(opened))
    data = bytearray(job.read_bytes())
    data[len(data) // 2] ^= 0x20
    tampered = cli.cwd / "tampered.sealed"
    tampered.write_bytes(bytes(data))
    assert "changed" in refused("codes", "unseal", str(tampered), "--key",
                                str(cli.cwd / "line1.key"), "--out", str(cli.cwd / "t"))
    assert not (cli.cwd / "t").exists() or not any((cli.cwd / "t").iterdir())


def test_an_sscc_pool_sealed_to_a_keygen_key_opens_and_decodes_to_its_ssccs(
    cli, plant: str
) -> None:
    """codes print --sscc --seal with a `line keygen` key, codes unseal --signer with the
    tenant's print-signing key: one GS1-128 PNG per SSCC, each read as ]C1, 00 and the SSCC."""
    cli.ok("sscc", "prefix", "--tenant", plant, PREFIX)  # again changes nothing
    ssccs = cli.ok("sscc", "request", "--tenant", plant, "--count", "6", "--request-id",
                   "pallets-sealed", "--format", "digits").stdout.split()
    cli.ok("line", "keygen", "--out", str(cli.cwd / "pallet-line"))
    job = cli.cwd / "pallets.sealed"
    cli.ok("codes", "print", "--tenant", plant, "--pool", "pallets-sealed", "--sscc", "--format",
           "png", "--seal", str(cli.cwd / "pallet-line.pub"), "--signer-out",
           str(cli.cwd / "tenant-print.pub"), "--out", str(job))
    opened = cli.cwd / "pallets"
    cli.ok("codes", "unseal", str(job), "--key", str(cli.cwd / "pallet-line.key"), "--signer",
           str(cli.cwd / "tenant-print.pub"), "--out", str(opened))
    scanned = [[f"{b.symbology_identifier}{b.text}" for b in zxingcpp.read_barcodes(
        Image.open(opened / f"{i:08d}.png"), text_mode=zxingcpp.TextMode.Plain)]
        for i in range(6)]
    assert scanned == [[f"]C100{s}"] for s in ssccs]


def test_printing_an_unknown_pool_prints_one_line(cli, plant: str) -> None:
    """A pool that was never requested is one line naming the request id."""
    result = cli("codes", "print", "--tenant", plant, "--pool", "no-such-pool", "--format",
                 "zpl", "--out", str(cli.cwd / "x.zpl"))
    assert result.returncode != 0 and not TRACEBACK.search(result.stderr)
    assert "request_id" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_simulated_lines_pack_ship_and_read_back_every_pack(cli, plant: str, server) -> None:
    """Two simulated lines (2x3 packs a case, 2 cases a pallet) commission, reject, aggregate,
    label with SSCCs and ship one pallet each, with no misread, and report the lag; each
    shipped pallet is an SSCC holding SSCC cases."""
    with grpc.insecure_channel(server.issue_addr) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        for party, kind in (("PLANT-S", cpb.PARTY_KIND_PLANT),
                            ("DC-S", cpb.PARTY_KIND_DISTRIBUTOR)):
            admin.AddParty(apb.AddPartyRequest(tenant=plant, party=cpb.Party(
                party_id=party, name=party, kind=kind, region="310115")), timeout=30)
    cli("sscc", "prefix", "--tenant", plant, PREFIX)
    result = cli.ok("line", "simulate", "--tenant", plant, "--product", GTIN, "--lot", LOT,
                    "--party", "PLANT-S", "--ship-to", "DC-S", "--lines", "2", "--rate",
                    "6000/min", "--reject", "10%", "--case", "2x3", "--pallet", "2",
                    "--pallets", "1", "--sample-every", "3")
    report = result.stderr.splitlines()
    rows = [line.split() for line in report if re.match(r"line[0-9] ", line)]
    assert [row[0] for row in rows] == ["line1", "line2"], result.stderr
    for row in rows:
        packs, bundles, cases, pallets, shipped, sampled, misreads = map(int, row[1:2] + row[4:])
        assert (packs, bundles, cases, pallets, shipped, misreads) == (12, 6, 2, 1, 1, 0)
        assert sampled > 0
    assert any(line.startswith("commission-to-ledger lag: p50") for line in report)
    with grpc.insecure_channel(server.verify_addr) as channel:
        events = trace_pb2_grpc.TraceStub(channel).ListEvents(trace_pb2.ListEventsRequest(
            tenant=plant, page_size=1000), timeout=30).events
    shipped = [code for e in events if e.kind == lpb.EVENT_KIND_SHIP for code in e.codes]
    assert len(shipped) == 2 and all(parse(code).code.scheme is Scheme.SSCC for code in shipped)
    onto_pallets = [e for e in events
                    if e.kind == lpb.EVENT_KIND_AGGREGATE and e.parent in shipped]
    assert all(parse(c).code.scheme is Scheme.SSCC for e in onto_pallets for c in e.codes)
