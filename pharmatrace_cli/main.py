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
    certbind,
    codes,
    completion,
    credentials,
    demo,
    exchange,
    labels,
    lifecycle,
    masterdata,
    ops,
    oversight,
    partners,
    printing,
    regions,
    replication,
    service,
    tenant_day,
    verify,
)
from pharmatrace_cli.command import (
    EXIT_CODES_HELP,
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    add_examples,
    add_global_options,
    resolve_globals,
)
from tracecore.errors import TraceError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        resolve_globals(args)
        result: int = args.run(args)
        return result
    except CliError as exc:
        print(f"pharmatrace: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except grpc.RpcError as exc:
        print(f"pharmatrace: {_rpc_message(exc)}", file=sys.stderr)
        return _rpc_exit(exc)
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


def _rpc_exit(exc: grpc.RpcError) -> int:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    if code is grpc.StatusCode.UNAVAILABLE:
        return EXIT_UNREACHABLE
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return EXIT_DENIED
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
        epilog=f"example:\n  pharmatrace --profile acme verify --file received.txt\n\n"
        f"{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    add_global_options(parser)
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
    partners.register(commands)
    certbind.register(commands)
    lifecycle.register(commands)
    tenant_day.register(commands)
    completion.register(commands, parser)
    add_examples()
    return parser


if __name__ == "__main__":
    sys.exit(main())
