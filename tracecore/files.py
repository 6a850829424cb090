"""Small files read whole within a bound, and files written whole or not at all and made
durable: keys, key rings, certificates, backups."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from tracecore.errors import InvalidArgument, TraceError

MAX_PEM_BYTES = 1 << 20
"""A PEM chain or key is a few KiB; the bound keeps a wrong path (a log, a device) from being
read."""
MAX_TOKEN_BYTES = 4096
"""An API token file: a token is well under 100 bytes."""


def read_bounded(path: Path, limit: int, what: str,
                 error: type[TraceError] = InvalidArgument) -> bytes:
    """The whole of a small file (a key, a key ring, a certificate chain), read without ever
    holding more than ``limit`` + 1 bytes of it.

    A file that cannot be read or is larger than ``limit`` raises ``error``, whose message names
    ``what`` and the operating system's reason, never the path, since a message may reach a
    client.
    """
    try:
        with path.open("rb") as source:
            content = source.read(limit + 1)
    except OSError as exc:
        raise error(f"{what} cannot be read: {os_reason(exc)}") from None
    if len(content) > limit:
        raise error(f"{what} is larger than {limit} bytes")
    return content


def os_reason(exc: OSError) -> str:
    """The operating system's reason without the file name, which ``str(exc)`` would include."""
    return exc.strerror or type(exc).__name__


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


def make_private(root: Path) -> None:
    """Makes ``root`` and everything under it readable by its owner alone (directories 0700,
    files 0600), whatever the umask made them: a ledger holds every issued serial."""
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        if path.is_symlink():
            continue
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o700 if path.is_dir() else 0o600)
