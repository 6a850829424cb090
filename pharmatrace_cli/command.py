"""What every `pharmatrace` command shares: exit codes, the one-line error, the client options,
reading codes, writing output whole."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


def read_inputs(codes: Iterable[str], file: str | None) -> Iterator[str]:
    """The codes given as arguments, then those in the --file (one a line, '-' for stdin)."""
    yield from codes
    if file:
        with (sys.stdin if file == "-" else open(file, encoding="utf-8")) as f:
            for line in f:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line


def replaceable(path: Path) -> bool:
    """Whether ``path`` may be written as NAME.part and renamed over: only a regular file or a new
    name. A device, pipe or socket (/dev/null, a FIFO) is written to directly, since renaming over
    it would replace it with a regular file."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return True


class Output:
    """The --out file (written whole, then renamed, so a cut stream leaves no half file), a
    device or pipe written directly, or standard output."""

    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path and path != "-" else None
        self._file: IO[str] | None = None
        self._direct = self._path is not None and not replaceable(self._path)

    def __enter__(self) -> IO[str]:
        if self._path is None:
            return sys.stdout
        target = self._path if self._direct else self._path.with_name(self._path.name + ".part")
        self._file = open(target, "w", encoding="utf-8")
        return self._file

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._file is None or self._path is None:
            return
        self._file.close()
        if self._direct:
            return
        part = self._path.with_name(self._path.name + ".part")
        if exc_type is None:
            part.replace(self._path)


class Progress:
    """A progress bar on standard error, when it is a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self._total = total
        self._enabled = enabled
        self._started = time.monotonic()

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        width = 30
        filled = int(width * done / max(1, self._total))
        rate = done / max(1e-9, time.monotonic() - self._started)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self._total:,}"
                         f" codes  {rate:,.0f}/s")
        sys.stderr.flush()

    def done(self) -> None:
        if self._enabled:
            sys.stderr.write("\n")


def add_command(group: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int],
                *, client: bool = True, tenant: bool = True) -> argparse.ArgumentParser:
    """A subcommand; client commands get the address, TLS and tenant options."""
    sub: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(run=run)
    if client:
        sub.add_argument("--issue-addr", help="issuance service (default "
                         "$PHARMATRACE_ISSUE_ADDR or 127.0.0.1:50051)")
        sub.add_argument("--verify-addr", help="verification service (default "
                         "$PHARMATRACE_VERIFY_ADDR or 127.0.0.1:50052)")
        sub.add_argument("--ca", help="CA certificate (PEM) to verify the servers; "
                         "without it the connection is plaintext")
        sub.add_argument("--cert", help="client certificate (PEM) for mutual TLS")
        sub.add_argument("--key", help="client private key (PEM) for mutual TLS")
        sub.add_argument("--token-file",
                         help="file holding the API token (default $PHARMATRACE_TOKEN)")
    if tenant:
        sub.add_argument("--tenant", default=os.environ.get("PHARMATRACE_TENANT", "demo"),
                         help="tenant (default $PHARMATRACE_TENANT or 'demo')")
    return sub


def endpoints(args: argparse.Namespace) -> Any:
    """The services' addresses and TLS settings from a client command's options."""
    from pharmatrace_cli.client import Endpoints

    return Endpoints.resolve(args.issue_addr, args.verify_addr, optional_path(args.ca),
                             optional_path(args.cert), optional_path(args.key),
                             optional_path(args.token_file))


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def epoch_ms(text: str | None) -> int:
    """An ISO date or date-time (UTC unless it says otherwise) as epoch milliseconds."""
    if not text:
        return 0
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"not an ISO date or date-time: {text}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)
