"""The generated stubs checked in beside the protos are exactly what `make proto` makes of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PACKAGE = Path("pharmatrace") / "v1"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _generated(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())
            if p.is_file() and p.name.endswith(GENERATED)}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The stubs made from the committed protos by the Makefile's command, into a temp dir."""
    out = tmp_path_factory.mktemp("proto")
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    assert protos, "no .proto files found"
    # protoc-gen-mypy and protoc-gen-mypy_grpc are console scripts next to the interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={out}",
         f"--grpc_python_out={out}", f"--mypy_out={out}", f"--mypy_grpc_out={out}", *protos],
        cwd=PROTO_ROOT, env=env, check=True, capture_output=True, timeout=120,
    )
    return _generated(out / PACKAGE)


def test_every_proto_has_its_four_generated_files(regenerated: dict[str, bytes]) -> None:
    """Regeneration makes _pb2.py, _pb2.pyi, _pb2_grpc.py and _pb2_grpc.pyi for every proto."""
    stems = {p.stem for p in (PROTO_ROOT / PACKAGE).glob("*.proto")}
    assert set(regenerated) == {stem + suffix for stem in stems for suffix in GENERATED}


def test_committed_stubs_match_the_protos(regenerated: dict[str, bytes]) -> None:
    """No committed stub differs from a fresh `make proto`, is missing, or is left over."""
    committed = _generated(PROTO_ROOT / PACKAGE)
    stale = sorted(name for name in regenerated.keys() & committed.keys()
                   if regenerated[name] != committed[name])
    missing = sorted(regenerated.keys() - committed.keys())
    left_over = sorted(committed.keys() - regenerated.keys())
    assert not stale, f"stale generated files (run `make proto`): {', '.join(stale)}"
    assert not missing, f"generated files not checked in (run `make proto`): {', '.join(missing)}"
    assert not left_over, f"generated files without a .proto: {', '.join(left_over)}"
