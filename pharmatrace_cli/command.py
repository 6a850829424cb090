"""What every `pharmatrace` command shares: exit codes, the one-line error, the client options,
reading codes, writing output whole, serving until a signal."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_GENUINE = 3
EXIT_ALERTS = 4
EXIT_UNREACHABLE = 5
EXIT_DENIED = 6

EXIT_CODES_HELP = """exit status:
  0  done; every code verified is genuine and raises no alert
  1  any other error (refused request, missing file, ...)
  2  usage error (unknown command or option, missing argument)
  3  verify: some code is not genuine (unknown, bad signature, invalid format)
  4  verify: every code is genuine, but some raise an alert (recalled, expired, ...)
  5  server unreachable
  6  permission denied or not authenticated
"""
"""The one list of exit statuses, shown in every command's --help and in the README."""


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


def read_inputs(codes: Iterable[str], file: str | None) -> Iterator[str]:
    """The codes given as arguments, then those in the --file (one a line, '-' for stdin)."""
    yield from codes
    if file:
        for _, line in input_lines(file):
            if line.strip():
                yield line


def input_lines(file: str) -> Iterator[tuple[int, str]]:
    """The lines of a --file ('-': standard input), numbered from 1, without their line ends.
    The byte order mark Windows editors and spreadsheets put before UTF-8 text is dropped; a
    file that is not UTF-8 (UTF-16, say) is refused in one line naming it."""
    try:
        with (sys.stdin if file == "-" else open(file, encoding="utf-8")) as f:
            for n, raw in enumerate(f, 1):
                line = raw.rstrip("\r\n")
                yield n, line.removeprefix("\ufeff") if n == 1 else line
    except UnicodeDecodeError as exc:
        raise CliError(f"{file}: not UTF-8 text (byte {exc.start}: {exc.reason}): save it as "
                       "UTF-8, one code a line") from None


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
    """A progress bar on standard error (count, rate, time left), only when it is a terminal:
    a pipe or a log file gets none of it. ``total`` None is a count without an end."""

    def __init__(self, total: int | None, *, enabled: bool, unit: str = "codes") -> None:
        self._bar: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                        TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                        TimeRemainingColumn(), console=Console(stderr=True),
                        redirect_stdout=False, redirect_stderr=False, transient=False)
        self._started = time.monotonic()
        self._task = self._bar.add_task(unit, total=total, rate="")
        self._bar.start()

    def update(self, done: int) -> None:
        if self._bar is None:
            return
        rate = done / max(1e-9, time.monotonic() - self._started)
        self._bar.update(self._task, completed=done, rate=f"{rate:,.0f}/s")

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def add_command(group: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int],
                *, client: bool = True, tenant: bool = True,
                example: str | None = None) -> argparse.ArgumentParser:
    """A subcommand; client commands also take the global options after their name.

    ``example`` is a command line shown in --help; without it the help shows the simplest call.
    """
    sub: argparse.ArgumentParser = group.add_parser(
        name, help=help_text, description=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if example:
        sub.epilog = f"example:\n  {example}\n\n{EXIT_CODES_HELP}"
    else:
        _WITHOUT_EXAMPLE.append(sub)
    sub.set_defaults(run=run, client_settings=client, tenant_setting=tenant)
    if client:
        add_global_options(sub, tenant=tenant, top=False)
    elif tenant:
        sub.add_argument("--tenant", default=argparse.SUPPRESS,
                         help="tenant (default $PHARMATRACE_TENANT, the profile's, or 'demo')")
    return sub


_WITHOUT_EXAMPLE: list[argparse.ArgumentParser] = []


def add_examples() -> None:
    """Gives each command registered without an example one made from its arguments: its
    positionals and required options, each with its metavar (called once the parser is built,
    when every argument is known)."""
    while _WITHOUT_EXAMPLE:
        sub = _WITHOUT_EXAMPLE.pop()
        words = [sub.prog, *(["--tenant", "acme"] if sub.get_default("tenant_setting") else [])]
        for action in sub._actions:
            name = str(action.metavar or action.dest).upper()
            if not action.option_strings and action.nargs != 0:
                words.append("|".join(map(str, action.choices)) if action.choices else name)
            elif action.required:
                words.append(f"{action.option_strings[-1]} {name}")
        sub.epilog = f"example:\n  {' '.join(words)}\n\n{EXIT_CODES_HELP}"


def add_global_options(parser: argparse.ArgumentParser, *, tenant: bool = True,
                       top: bool = True) -> None:
    """The options accepted both before and after the subcommand's name.

    After the name they default to SUPPRESS, so that a value given before the name survives the
    subcommand's parse; `resolve_globals` then fills what neither gave from the environment and
    the profile file.
    """
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--profile", default=default, help="profile of the config file "
                       "(default $PHARMATRACE_PROFILE, else the file's default_profile)")
    group.add_argument("--issue-addr", default=default, help="issuance service (default "
                       "$PHARMATRACE_ISSUE_ADDR, the profile's issue_addr, or 127.0.0.1:50051)")
    group.add_argument("--verify-addr", default=default, help="verification service (default "
                       "$PHARMATRACE_VERIFY_ADDR, the profile's verify_addr, or 127.0.0.1:50052)")
    group.add_argument("--ca", default=default, help="CA certificate (PEM) to verify the "
                       "servers; without it the connection is plaintext")
    group.add_argument("--cert", default=default, help="client certificate (PEM) for mutual TLS")
    group.add_argument("--key", default=default, help="client private key (PEM) for mutual TLS")
    group.add_argument("--token-file", default=default,
                       help="file holding the API token (default $PHARMATRACE_TOKEN, then the "
                       "profile's token_file)")
    if tenant:
        group.add_argument("--tenant", default=default,
                           help="tenant (default $PHARMATRACE_TENANT, the profile's, or 'demo')")


def resolve_globals(args: argparse.Namespace) -> None:
    """Fills the global options neither flag gave: environment first, then the profile file."""
    from pharmatrace_cli import profiles

    client = getattr(args, "client_settings", False)
    tenant = getattr(args, "tenant_setting", False)
    if not client and not tenant:
        return  # a command with neither server nor tenant: nothing to fill, no file to read
    try:
        profile = profiles.load(getattr(args, "profile", None))
    except profiles.ProfileError as exc:
        raise CliError(str(exc)) from None
    for name, env, fallback in profiles.SETTINGS:
        if not (tenant if name == "tenant" else client):
            continue
        if getattr(args, name, None):
            continue
        if name == "token_file" and os.environ.get("PHARMATRACE_TOKEN"):
            continue  # the token itself, from the environment, wins over the profile's file
        value = os.environ.get(env) or profile.get(name) or fallback
        setattr(args, name, profiles.expand(name, value))


def endpoints(args: argparse.Namespace) -> Any:
    """The services' addresses and TLS settings from a client command's options."""
    from pharmatrace_cli.client import Endpoints

    # getattr: a parsed command not run through `main` has no resolved global options.
    def option(name: str) -> Any:
        return getattr(args, name, None)

    return Endpoints.resolve(option("issue_addr"), option("verify_addr"),
                             optional_path(option("ca")), optional_path(option("cert")),
                             optional_path(option("key")), optional_path(option("token_file")))


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def day_or_ms(text: str | None) -> tuple[str, int]:
    """A bare YYYY-MM-DD as a local day of the tenant's zone (the server cuts it there), or a
    date-time as epoch milliseconds: ("2026-03-02", 0) or ("", ms)."""
    import datetime as dt

    if text and len(text) == 10:
        try:
            return dt.date.fromisoformat(text).isoformat(), 0
        except ValueError:
            pass
    return "", epoch_ms(text)


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


def subgroup(commands: Any, name: str, help_text: str) -> Any:
    """The subcommand group ``name``: the one another module made, or a new one."""
    parser = commands.choices.get(name)
    if parser is None:
        return commands.add_parser(name, help=help_text).add_subparsers(metavar="ACTION")
    return next(action for action in parser._actions
                if isinstance(action, argparse._SubParsersAction))


def add_output_options(sub: argparse.ArgumentParser, *, csv: bool = True) -> None:
    """--json (one object per line) and, where rows make sense, --csv; a table otherwise."""
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_const", const="json", dest="output",
                       help="one JSON object per line")
    if csv:
        group.add_argument("--csv", action="store_const", const="csv", dest="output",
                           help="comma-separated values with a header line")
    sub.set_defaults(output="table")


def message_doc(message: Any) -> dict[str, Any]:
    """A protobuf answer as the JSON object read commands print (field names as in the proto)."""
    from google.protobuf import json_format

    doc: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return doc


class Rows:
    """The one way read commands print what they found: a table for people (columns sized to
    the rows, or to ``widths`` when rows stream and cannot be waited for), one JSON object per
    line, or CSV with a header.

    ``write(doc, cells)``: ``doc`` is the whole record (the JSON line); ``cells`` its table and
    CSV columns, in the order of ``headers``.
    """

    def __init__(self, fmt: str, headers: Sequence[str], *, out: IO[str] | None = None,
                 widths: Sequence[int] | None = None) -> None:
        self.format = fmt
        self._headers = list(headers)
        self._out = out or sys.stdout
        self._widths = list(widths) if widths else None
        self._held: list[list[str]] = []
        self._csv: Any = None
        if fmt == "csv":
            import csv

            self._csv = csv.writer(self._out, lineterminator="\n")
        self._headed = False

    def write(self, doc: dict[str, Any], cells: Sequence[object]) -> None:
        if self.format == "json":
            import json

            self._out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        elif self.format == "csv":
            if not self._headed:
                self._headed = True
                self._csv.writerow(self._headers)
            self._csv.writerow(cells)
        elif self._widths:
            if not self._headed:
                self._headed = True
                self._line(self._headers)
            self._line([str(c) for c in cells])
        else:
            self._held.append([str(c) for c in cells])

    def json_text(self, lines: str) -> bool:
        """Writes JSON lines already encoded (a bulk command's fast path) when the output is
        JSON; False, writing nothing, otherwise."""
        if self.format != "json":
            return False
        self._out.write(lines)
        return True

    def close(self) -> None:
        """Prints a table held back for its column widths."""
        if self.format != "table" or self._widths or not self._held:
            return
        self._widths = [max(len(r[i]) for r in [self._headers, *self._held])
                        for i in range(len(self._headers))]
        self._line(self._headers)
        for row in self._held:
            self._line(row)
        self._held.clear()

    def _line(self, cells: Sequence[str]) -> None:
        assert self._widths is not None
        last = len(cells) - 1
        self._out.write("  ".join(c if i == last else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, self._widths, strict=True)))
                        + "\n")

    def __enter__(self) -> Rows:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class StopRequested(Exception):
    """A SIGTERM or SIGINT came while a server was still starting: it stops what has started
    and ends as after any stop."""


def stop_signals() -> asyncio.Event:
    """An ``asyncio.Event`` set by SIGTERM or SIGINT from now on: a serving command takes it
    before it starts anything, so that a stop asked for during a long start (a NATS server
    that does not answer yet, workers starting) stops it cleanly rather than killing it."""
    import asyncio  # only the commands that serve wait on an event loop
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def stopped(stop: asyncio.Event) -> None:
    """Between two steps of a start: StopRequested once a stop was asked for."""
    if stop.is_set():
        raise StopRequested


async def unless_stopped(stop: asyncio.Event, step: Awaitable[T]) -> T:
    """A step of a start that may wait long (connecting to NATS), given up (cancelled) with
    StopRequested when a stop is asked for first. Not for a step running in a thread, which
    no cancel stops: await that one, then call ``stopped``."""
    import asyncio

    from tracerpc.tasks import cancel_and_wait

    running = asyncio.ensure_future(step)
    asked = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({running, asked}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the command itself is cancelled: neither is left behind
        asked.cancel()
        if not running.done():
            await cancel_and_wait(running)
    if running.cancelled():
        raise StopRequested
    return running.result()


async def until_signalled(stop: asyncio.Event, tick: Callable[[], Awaitable[object]],
                          period_s: float = 2.0) -> None:
    """Returns once ``stop`` (``stop_signals``, taken when the command started) is set by
    SIGTERM or SIGINT; meanwhile awaits ``tick`` every ``period_s`` (a server's upkeep: dead
    workers restarted, gauges read)."""
    import asyncio

    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period_s)
        if not stop.is_set():
            await tick()
