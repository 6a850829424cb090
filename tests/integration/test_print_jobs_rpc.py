"""PrintJobs.PrintPool over real gRPC, served by a verification worker: a pool's job arrives
sealed to the line controller's key in pieces of at most 1 MiB, opens with that key only, and
every symbol in it decodes with zxing-cpp to exactly its code; refusals name their field."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from pharmatrace.v1 import common_pb2 as cpb
from pharmatrace.v1 import logistics_pb2 as spb
from pharmatrace.v1 import logistics_pb2_grpc, printing_pb2_grpc
from pharmatrace.v1 import printing_pb2 as pb
from PIL import Image

from tests.integration.conftest import RPC_TIMEOUT_S, Api, Gs1Product, Make, NmpaProduct, Servers
from tests.unit.test_print_decoding import _read
from tracecore import sscc
from tracecore.clock import now_ms
from tracecore.codes import Scheme, parse
from tracecore.ledger.store import PoolRequest
from tracecore.printing import seal

pytestmark = pytest.mark.timeout(300)

Refused = Callable[[grpc.StatusCode, str | None, Callable[[], object]], str]
PREFIX = "0614141"


@pytest.fixture(scope="module")
def line() -> seal.KeyPair:
    """A line controller's keys, as `pharmatrace line keygen` makes them."""
    return seal.KeyPair.generate()


@pytest.fixture(scope="module")
def jobs(verify_channel: grpc.Channel) -> printing_pb2_grpc.PrintJobsStub:
    return printing_pb2_grpc.PrintJobsStub(verify_channel)


def _print(jobs: printing_pb2_grpc.PrintJobsStub, tenant: str, request_id: str,
           line: seal.PublicKeys, tmp_path: Path, **options: object
           ) -> tuple[list[pb.PrintJobChunk], Path]:
    """The job's messages, and the sealed job they carry written to a file."""
    chunks = list(jobs.PrintPool(pb.PrintPoolRequest(
        tenant=tenant, request_id=request_id, line_key=line.to_pem(), **options),  # type: ignore[arg-type]
        timeout=RPC_TIMEOUT_S))
    path = tmp_path / f"{request_id}.sealed"
    path.write_bytes(b"".join(c.data for c in chunks))
    return chunks, path


def _files(path: Path, line: seal.KeyPair, signer: seal.PublicKeys) -> dict[str, bytes]:
    """The job's files, as `codes unseal --signer` opens it."""
    with seal.open_sealed(path, line, signer) as plain, \
            tarfile.open(fileobj=plain, mode="r|") as tar:
        out = {}
        for member in tar:
            source = tar.extractfile(member)
            assert source is not None
            out[member.name] = source.read()
        return out


def test_a_gs1_pool_prints_sealed_and_every_png_decodes_to_its_code(
    api: Api, gs1: Gs1Product, jobs: printing_pb2_grpc.PrintJobsStub, line: seal.KeyPair,
    tmp_path: Path,
) -> None:
    """40 codes as PNG: the first message names the labels, the line key and the tenant's
    signer; the job opens with the line's key, signed by that signer, and each PNG decodes
    (symbology identifier ]d2) to exactly the code issued at its position, lot and expiry too."""
    request_id = api.new_request_id()
    codes = api.codes(gs1.tenant, gs1.gtin, 40, lot=gs1.lot, request_id=request_id)
    chunks, path = _print(jobs, gs1.tenant, request_id, line.public(), tmp_path,
                          format=pb.PRINT_FORMAT_PNG)
    first = chunks[0]
    assert first.labels == 40
    assert first.line_key_fingerprint == line.public().fingerprint
    signer = seal.PublicKeys.from_pem(first.signer_key)
    assert first.signer_fingerprint == signer.signer_fingerprint
    assert all(len(c.data) <= seal.CHUNK for c in chunks)
    assert codes[0].split("(21)")[1].encode() not in path.read_bytes()
    files = _files(path, line, signer)
    assert sorted(files) == [f"{i:08d}.png" for i in range(40)]
    for i, code in enumerate(codes):
        (scanned,) = _read(Image.open(io.BytesIO(files[f"{i:08d}.png"])))
        assert scanned.startswith("]d2")
        read = parse(scanned)
        assert (read.code, read.lot, read.expiry) == (parse(code).code, gs1.lot, gs1.expiry)


def test_a_large_job_arrives_in_pieces_of_at_most_one_mib(
    api: Api, gs1: Gs1Product, jobs: printing_pb2_grpc.PrintJobsStub, line: seal.KeyPair,
    tmp_path: Path,
) -> None:
    """20,000 codes as ZPL (several MiB): many messages, none over 1 MiB, and the opened job
    holds one ^XA…^XZ format per code, in pool order."""
    request_id = api.new_request_id()
    codes = api.codes(gs1.tenant, gs1.gtin, 20_000, lot=gs1.lot, request_id=request_id)
    chunks, path = _print(jobs, gs1.tenant, request_id, line.public(), tmp_path,
                          format=pb.PRINT_FORMAT_ZPL)
    assert len(chunks) > 2 and all(len(c.data) <= seal.CHUNK for c in chunks)
    assert all(not c.signer_key for c in chunks[1:])
    files = _files(path, line, seal.PublicKeys.from_pem(chunks[0].signer_key))
    text = files["labels.zpl"].decode()
    assert text.count("^XA") == 20_000
    serials = [parse(c).code.serial for c in codes]
    assert [text.find(s) for s in serials[::997]] == sorted(text.find(s) for s in serials[::997])


def test_an_sscc_pool_prints_as_gs1_128_that_decodes_to_its_ssccs(
    api: Api, tenant: str, issue_channel: grpc.Channel, jobs: printing_pb2_grpc.PrintJobsStub,
    line: seal.KeyPair, tmp_path: Path,
) -> None:
    """An SSCC pool as PNG: one GS1-128 label per SSCC, each read as ]C1, 00 and the SSCC."""
    units = logistics_pb2_grpc.LogisticUnitsStub(issue_channel)
    units.RegisterCompanyPrefix(spb.RegisterCompanyPrefixRequest(
        tenant=tenant, company_prefix=PREFIX), timeout=RPC_TIMEOUT_S)
    pool = units.RequestSsccs(spb.RequestSsccsRequest(
        tenant=tenant, request_id="pallets-1", extension_digit=3, count=12),
        timeout=RPC_TIMEOUT_S)
    chunks, path = _print(jobs, tenant, "pallets-1", line.public(), tmp_path, sscc=True,
                          format=pb.PRINT_FORMAT_PNG)
    assert chunks[0].labels == 12
    files = _files(path, line, seal.PublicKeys.from_pem(chunks[0].signer_key))
    scanned = [_read(Image.open(io.BytesIO(files[f"{i:08d}.png"]))) for i in range(12)]
    assert scanned == [[f"]C100{s}"] for s in pool.ssccs]
    assert all(sscc.check(s) for s in pool.ssccs)


def test_an_nmpa_pool_prints_as_code128_of_its_20_digits(
    api: Api, nmpa: NmpaProduct, jobs: printing_pb2_grpc.PrintJobsStub, line: seal.KeyPair,
    tmp_path: Path,
) -> None:
    """NMPA codes as PNG: Code 128 (]C0) of exactly the 20 digits issued."""
    request_id = api.new_request_id()
    codes = api.codes(nmpa.tenant, nmpa.nmpa_id, 10, request_id=request_id)
    chunks, path = _print(jobs, nmpa.tenant, request_id, line.public(), tmp_path,
                          format=pb.PRINT_FORMAT_PNG)
    files = _files(path, line, seal.PublicKeys.from_pem(chunks[0].signer_key))
    scanned = [_read(Image.open(io.BytesIO(files[f"{i:08d}.png"]))) for i in range(10)]
    assert scanned == [[f"]C0{parse(c).code.text()}"] for c in codes]
    assert all(parse(c).code.scheme is Scheme.NMPA for c in codes)


def test_a_job_opens_with_its_line_key_only_and_each_tenant_signs_with_its_own_key(
    api: Api, gs1: Gs1Product, make: Make, jobs: printing_pb2_grpc.PrintJobsStub,
    line: seal.KeyPair, tmp_path: Path,
) -> None:
    """Another line's key is refused before a byte is decrypted; the tenant's signer is the same
    on every job, and another tenant's is another key."""
    request_id = api.new_request_id()
    api.codes(gs1.tenant, gs1.gtin, 5, lot=gs1.lot, request_id=request_id)
    chunks, path = _print(jobs, gs1.tenant, request_id, line.public(), tmp_path,
                          format=pb.PRINT_FORMAT_CSV)
    (tmp_path / "again").mkdir()
    again, _ = _print(jobs, gs1.tenant, request_id, line.public(), tmp_path / "again",
                      format=pb.PRINT_FORMAT_CSV)
    assert again[0].signer_key == chunks[0].signer_key
    with pytest.raises(seal.SealRefused, match="another line key"):
        _files(path, seal.KeyPair.generate(), seal.PublicKeys.from_pem(chunks[0].signer_key))
    other = make.gs1(make.tenant())
    other_id = api.new_request_id()
    api.codes(other.tenant, other.gtin, 5, lot=other.lot, request_id=other_id)
    theirs, _ = _print(jobs, other.tenant, other_id, line.public(), tmp_path,
                       format=pb.PRINT_FORMAT_CSV)
    assert theirs[0].signer_fingerprint != chunks[0].signer_fingerprint
    with pytest.raises(seal.SealRefused, match="another issuer"):
        _files(path, line, seal.PublicKeys.from_pem(theirs[0].signer_key))


def test_refusals_name_their_field(
    api: Api, gs1: Gs1Product, nmpa: NmpaProduct, servers: Servers,
    jobs: printing_pb2_grpc.PrintJobsStub, line: seal.KeyPair, refused: Refused,
) -> None:
    """No line key, an unreadable one, no format, a pool or SSCC pool never requested, a pool
    still open, a symbology the codes cannot take: each refused before any byte, naming why."""
    tenant = gs1.tenant
    request_id = api.new_request_id()
    api.codes(tenant, gs1.gtin, 3, lot=gs1.lot, request_id=request_id)
    key = line.public().to_pem()

    def call(**fields: object) -> Callable[[], object]:
        fields = {"tenant": tenant, "request_id": request_id, "format": pb.PRINT_FORMAT_ZPL,
                  "line_key": key, **fields}
        return lambda: list(jobs.PrintPool(pb.PrintPoolRequest(**fields),  # type: ignore[arg-type]
                                           timeout=RPC_TIMEOUT_S))

    assert "only sealed" in refused(grpc.StatusCode.INVALID_ARGUMENT, "line_key",
                                    call(line_key=b""))
    refused(grpc.StatusCode.INVALID_ARGUMENT, "line_key", call(line_key=b"not a key"))
    refused(grpc.StatusCode.INVALID_ARGUMENT, "format",
            call(format=pb.PRINT_FORMAT_UNSPECIFIED))
    refused(grpc.StatusCode.INVALID_ARGUMENT, "png_scale", call(png_scale=99))
    refused(grpc.StatusCode.NOT_FOUND, "request_id", call(request_id="no-such-pool"))
    refused(grpc.StatusCode.NOT_FOUND, "request_id", call(request_id="no-such-pool", sscc=True))
    ledger = servers.codegen.data.get(tenant).ledger
    ledger.open_pool(PoolRequest("still-open", gs1.gtin, gs1.lot, cpb.PACKAGING_LEVEL_UNIT, 10),
                     1, now_ms())
    assert "still open" in refused(grpc.StatusCode.FAILED_PRECONDITION, "request_id",
                                   call(request_id="still-open"))
    nmpa_id = api.new_request_id()
    api.codes(nmpa.tenant, nmpa.nmpa_id, 2, request_id=nmpa_id)
    refused(grpc.StatusCode.FAILED_PRECONDITION, "symbology",
            call(tenant=nmpa.tenant, request_id=nmpa_id,
                 symbology=pb.PRINT_SYMBOLOGY_DATAMATRIX))
