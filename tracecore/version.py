"""The release of pharmatrace running, as installed (``pyproject.toml``'s version)."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Final

#: The ledger format this release reads and writes (see tracecore.ledger.format).
LEDGER_FORMAT: Final = 4


@cache
def release() -> str:
    """``0.2.0``, or ``unknown`` when run from a tree that was never installed."""
    try:
        return metadata.version("pharmatrace")
    except metadata.PackageNotFoundError:
        return "unknown"
