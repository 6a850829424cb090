"""`pharmatrace completion bash|zsh`: the shell's completion script, made from the parser itself
(by shtab), so that every command and option completes as soon as it exists."""

from __future__ import annotations

import argparse
from typing import Any

from pharmatrace_cli.command import EXIT_OK, add_command

SHELLS = ("bash", "zsh")


def register(commands: Any, parser: argparse.ArgumentParser) -> None:
    """Adds completion to the command group; ``parser`` is the whole command's."""
    sub = add_command(commands, "completion", "Print the shell completion script for bash or "
                      "zsh.", lambda args: _completion(args, parser), client=False,
                      tenant=False,
                      example='eval "$(pharmatrace completion bash)"   # in ~/.bashrc; for zsh: '
                      'pharmatrace completion zsh > "${fpath[1]}/_pharmatrace"')
    sub.add_argument("shell", choices=SHELLS)


def _completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import shtab

    print(shtab.complete(parser, shell=args.shell))
    return EXIT_OK
