"""The layering holds: no import cycles among the project's modules, and the domain stays free of
gRPC and of the service API messages."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Package name -> its folder; `pharmatrace` is the generated API package under proto/.
PACKAGES = {
    "tracecore": ROOT / "tracecore",
    "tracerpc": ROOT / "tracerpc",
    "codegen_svc": ROOT / "codegen_svc",
    "verify_svc": ROOT / "verify_svc",
    "pharmatrace_cli": ROOT / "pharmatrace_cli",
    "bench": ROOT / "bench",
    "pharmatrace": ROOT / "proto" / "pharmatrace",
}
SERVICE_MESSAGES = frozenset(
    f"pharmatrace.v1.{name}_pb2"
    for name in ("admin", "issuance", "lifecycle", "verification", "trace")
)


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module ``module`` imports, at the top or inside a function: a cycle through a
    function-level import still ties the two modules together."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from package import module` imports the module.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    every = {name: set(_imported(name, path)) for name, path in modules.items()}
    return {name: {i for i in imports if i in modules and i != name}
            for name, imports in every.items()}


def _imports_order(cycle: graphlib.CycleError) -> list[str]:
    # graphlib walks from a module to those that import it; a reader follows the imports.
    return list(reversed(cycle.args[1]))


def test_no_module_of_the_project_imports_itself_back() -> None:
    """The import graph of the project's modules has no cycle (names the first one found)."""
    sorter = graphlib.TopologicalSorter(_graph(MODULES))
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        pytest.fail("import cycle (A -> B: A imports B): " + " -> ".join(_imports_order(cycle)))


def test_no_package_depends_on_a_package_that_depends_back_on_it() -> None:
    """Between packages the arrows go one way: the domain below, transports and tools above."""
    between: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for name, imports in _graph(MODULES).items():
        source = name.partition(".")[0]
        between[source] |= {i.partition(".")[0] for i in imports} - {source}
    sorter = graphlib.TopologicalSorter(between)
    try:
        sorter.prepare()
    except graphlib.CycleError as cycle:
        pytest.fail("package cycle (A -> B: A imports B): " + " -> ".join(_imports_order(cycle)))


def _domain_imports() -> set[tuple[str, str]]:
    return {(name, imported) for name, path in MODULES.items() if name.startswith("tracecore")
            for imported in _imported(name, path)}


def test_the_domain_never_imports_grpc() -> None:
    """tracecore (and its ledger) runs without gRPC: any transport can call it."""
    offending = sorted((m, i) for m, i in _domain_imports() if i.partition(".")[0] == "grpc")
    assert offending == []


def test_the_domain_never_imports_the_service_api_messages() -> None:
    """Only adapters import admin_pb2, issuance_pb2, lifecycle_pb2, verification_pb2, trace_pb2
    (common_pb2 and ledger_pb2 are the domain's own records)."""
    offending = sorted((m, i) for m, i in _domain_imports() if i in SERVICE_MESSAGES)
    assert offending == []
