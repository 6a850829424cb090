"""The `pharmatrace` command: run the services, administer a tenant, request and verify codes.

Each command group lives in its own module with a ``register(commands)`` function; this module
assembles the parser from them and runs the chosen command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc

from pharmatrace_cli import (
    codes,
    credentials,
    demo,
    exchange,
    labels,
    masterdata,
    ops,
    oversight,
    printing,
    regions,
    replication,
    service,
    verify,
)
from pharmatrace_cli.command import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError
from tracecore.errors import TraceError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.run(args)
        return result
    except CliError as exc:
        print(f"pharmatrace: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except grpc.RpcError as exc:
        print(f"pharmatrace: {_rpc_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except TraceError as exc:
        print(f"pharmatrace: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pharmatrace: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return EXIT_OK
        where = f": {exc.filename}" if exc.filename else ""
        print(f"pharmatrace: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR


def _rpc_message(exc: grpc.RpcError) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code is grpc.StatusCode.UNAVAILABLE and "connect" in (details or ""):
        return f"service unavailable ({details}); is `pharmatrace serve` running?"
    return f"{code.name if code else 'error'}: {details}"


def _version() -> str:
    from tracecore.version import LEDGER_FORMAT, release

    return f"pharmatrace {release()} (ledger format {LEDGER_FORMAT})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pharmatrace",
        description="Drug pack serialization and traceability: one item, one code.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    tenant = masterdata.register(commands)
    service.register(commands, tenant)
    codes.register(commands)
    verify.register(commands)
    credentials.register(commands)
    exchange.register(commands)
    demo.register(commands)
    oversight.register(commands)
    ops.register(commands)
    printing.register(commands)
    regions.register(commands)
    labels.register(commands)
    replication.register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
