"""The variable-data CSV a label template (BarTender, NiceLabel, a printer's own) is filled from."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from tracecore.printing.labels import Label, LabelRun

# What makes a CSV value need quotes; "\x1f" (unit separator) stands between values meanwhile.
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
_FIELD_NAMES = {"01": "gtin", "17": "expiry", "10": "lot", "21": "serial", "00": "sscc",
                "nmpa": "nmpa"}


def _row(label: Label) -> str:
    """The label's row but its position, values apart by unit separators."""
    return "\x1f".join((label.code, label.symbology.value, label.data,
                        *(value for _, value in label.fields), *label.lines))


def csv_text(labels: Sequence[Label], *, header: bool = True) -> str:
    """One row per label: position, code, symbology, the data to encode (GS1 AIs in square
    brackets, as zint-based printers take them), each field by name, and the human-readable
    lines."""
    out = io.StringIO()
    if not labels:
        return ""
    first = labels[0]
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["position", "code", "symbology", "data",
                         *(_FIELD_NAMES[ai] for ai, _ in first.fields),
                         *(f"line{i + 1}" for i in range(len(first.lines)))])
    write = out.write
    parts = labels.template(_row) if isinstance(labels, LabelRun) else None
    if parts is not None and _NEEDS_QUOTES.search("".join(parts)) is None:
        assert isinstance(labels, LabelRun)
        # The row without its position, split where the serial goes.
        tail = [part.replace("\x1f", ",") for part in parts]
        for position, serial in enumerate(labels.serials, labels.start):
            write(f"{position},{serial.join(tail)}\n")
        return out.getvalue()
    for label in labels:
        row = f"{label.position}\x1f{_row(label)}"
        if _NEEDS_QUOTES.search(row) is None:
            write(row.replace("\x1f", ",") + "\n")
        else:
            writer.writerow(row.split("\x1f"))
    return out.getvalue()
