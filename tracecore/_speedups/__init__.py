"""Compiled twins of a few per-code loops, each checked against its pure-Python reference.

Each module here is built from its ``.pyx`` by ``pip install`` (``setup.py``). Callers import a
compiled module through ``load`` and fall back to their own pure-Python code when it gives
None: the extension was not built (no compiler on the machine), or ``PHARMATRACE_PURE=1`` asks
for the reference path (tests compare the two; a suspected difference can be ruled out in
production by restarting with it).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_ENV = "PHARMATRACE_PURE"
PURE = os.environ.get(PURE_ENV, "") not in ("", "0")
"""Whether the environment asks for the pure-Python path; read once, at import."""


def load(name: str) -> ModuleType | None:
    """The compiled module ``tracecore._speedups.<name>``; None when it was not built or
    ``PHARMATRACE_PURE`` is set."""
    if PURE:
        return None
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None
