"""The variable-data CSV a label template (BarTender, NiceLabel, a printer's own) is filled from."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from tracecore.printing.labels import Label

# What makes a CSV value need quotes; "\x1f" (unit separator) stands between values meanwhile.
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
_FIELD_NAMES = {"01": "gtin", "17": "expiry", "10": "lot", "21": "serial", "00": "sscc",
                "nmpa": "nmpa"}


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
    for label in labels:
        row = "\x1f".join((str(label.position), label.code, label.symbology.value, label.data,
                           *(value for _, value in label.fields), *label.lines))
        if _NEEDS_QUOTES.search(row) is None:
            write(row.replace("\x1f", ",") + "\n")
        else:
            writer.writerow(row.split("\x1f"))
    return out.getvalue()
