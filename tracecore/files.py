"""Files written whole or not at all, and made durable: key rings, certificates, backups."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Puts ``data`` at ``path`` so that a crash leaves the old file or the new one, never a mix.

    The file is created 0600 (mkstemp), so a secret is never readable by others, not even
    while it is written; ``mode`` is applied before any byte lands. Without ``overwrite`` a name
    taken in the meantime is refused (FileExistsError): unlike rename, link does not replace.
    The caller makes the directory entry durable with ``fsync_directory``.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if mode != 0o600:
                os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def fsync_directory(directory: Path) -> None:
    """Makes a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
