"""A print job: labels rendered in one output kind and written, as they come, to a directory,
a file, or a tar stream (what a sealed job holds)."""

from __future__ import annotations

import enum
import io
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

from tracecore.printing import sheet, symbols, vdp, zpl
from tracecore.printing.labels import Label


class Kind(enum.StrEnum):
    """What a job is written as."""

    SVG = "svg"
    """One SVG file per symbol."""
    PNG = "png"
    """One PNG file per symbol."""
    PDF = "pdf"
    """One PDF of A4 label sheets, the human-readable text under each symbol."""
    ZPL = "zpl"
    """One file of ZPL II label formats for thermal printers."""
    CSV = "csv"
    """One variable-data CSV for a label template."""

    @property
    def per_symbol(self) -> bool:
        return self in (Kind.SVG, Kind.PNG)


class Sink(Protocol):
    """Where a job's files go."""

    def put(self, name: str, data: bytes) -> None: ...

    def put_stream(self, name: str, stream: IO[bytes], size: int) -> None: ...


class DirectorySink:
    """Files in a directory (created if missing)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._path = path

    def put(self, name: str, data: bytes) -> None:
        (self._path / name).write_bytes(data)

    def put_stream(self, name: str, stream: IO[bytes], size: int) -> None:
        with open(self._path / name, "wb") as out:
            shutil.copyfileobj(stream, out)


class TarSink:
    """Members of a tar stream written to ``out`` (a sealer, for a sealed job)."""

    def __init__(self, out: IO[bytes]) -> None:
        # Closed by close(): the stream outlives this call.
        self._tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def put(self, name: str, data: bytes) -> None:
        self.put_stream(name, io.BytesIO(data), len(data))

    def put_stream(self, name: str, stream: IO[bytes], size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        self._tar.addfile(info, stream)

    def close(self) -> None:
        self._tar.close()


class JobWriter:
    """Renders labels as they are added; ``close`` writes what is kept whole (PDF, ZPL, CSV)."""

    def __init__(self, kind: Kind, sink: Sink, *, name: str = "labels", png_scale: int = 4,
                 module_dots: int = 4) -> None:
        self.kind = kind
        self.count = 0
        self._sink = sink
        self._name = name
        self._png_scale = png_scale
        self._module_dots = module_dots
        self._pending: list[Label] = []
        self._spool: IO[bytes] | None = None
        if kind in (Kind.ZPL, Kind.CSV):
            self._spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115

    def add(self, labels: Sequence[Label]) -> None:
        kind = self.kind
        if kind is Kind.SVG:
            for label in labels:
                self._sink.put(_file_name(label, "svg"), symbols.svg(label).encode())
        elif kind is Kind.PNG:
            for label in labels:
                self._sink.put(_file_name(label, "png"),
                               symbols.png(label, scale=self._png_scale))
        elif kind is Kind.PDF:
            self._pending.extend(labels)
        elif kind is Kind.ZPL:
            assert self._spool is not None
            self._spool.write("".join(zpl.formats(labels, module_dots=self._module_dots)).encode())
        else:
            assert self._spool is not None
            self._spool.write(vdp.csv_text(labels, header=self.count == 0).encode())
        self.count += len(labels)

    def close(self) -> None:
        if self.kind is Kind.PDF:
            self._sink.put(f"{self._name}.pdf", sheet.pdf(self._pending))
            self._pending.clear()
        elif self._spool is not None:
            size = self._spool.tell()
            self._spool.seek(0)
            self._sink.put_stream(f"{self._name}.{self.kind.value}", self._spool, size)
            self._spool.close()


def _file_name(label: Label, extension: str) -> str:
    return f"{label.position:08d}.{extension}"
