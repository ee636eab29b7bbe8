"""Groups of `lit-diffusion` commands: a group is a dict {name: function or dict}; `run` walks it by the leading
words of argv, so every leaf has its own parser (lit_diffusion.typed_cli: `--help` from the signature and
docstring, `-c/--config FILE`, `--print_config`), and reports a user's mistake in one line."""
from __future__ import annotations

import os
import sys
from typing import Callable, Union

from lit_diffusion.typed_cli import config_names_a, describe, parse

Tree = Union[Callable, dict]
__all__ = ["Tree", "config_names_a", "group_help", "parse", "resolve", "run"]


def resolve(tree: Tree, argv: list[str], prog: str) -> tuple[Callable, list[str], str]:
    """Walk a group of commands by argv's leading words: (the command's function, the rest of argv, prog).
    A group's help (or a missing or unknown command) ends in SystemExit."""
    while isinstance(tree, dict):
        if not argv or argv[0] not in tree or argv[0].startswith("_"):
            if argv and argv[0] not in ("-h", "--help"):
                print(f"{prog}: unknown command {argv[0]!r}\n\n{group_help(tree, prog)}", file=sys.stderr)
                raise SystemExit(2)
            print(group_help(tree, prog))
            raise SystemExit(0 if argv else 2)
        prog, tree, argv = f"{prog} {argv[0]}", tree[argv[0]], argv[1:]
    return tree, argv, prog


def group_help(tree: dict, prog: str) -> str:
    lines = [f"usage: {prog} COMMAND ...   ({prog} COMMAND --help for its options)", "", "commands:"]
    for name, sub in tree.items():
        first = sub.get("_help", "") if isinstance(sub, dict) else describe(sub).split("\n")[0]
        if name != "_help":
            lines.append(f"  {name:<12} {first}")
    return "\n".join(lines)


def run(tree: Tree, argv: list[str], prog: str, errors: tuple = (), error_status: int = 1) -> int:
    """Parse argv for the command it names in `tree` and call it; returns its exit status. The exceptions
    in `errors` are the user's mistakes (a missing file, a bad value): printed in one line, not a traceback."""
    try:
        function, argv, prog = resolve(tree, list(argv), prog)
        arguments = parse(function, argv, prog)
    except SystemExit as stop:  # --help, --print_config and parser errors end here, not in the caller
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    try:
        return int(function(**arguments) or 0)
    except errors as error:
        if os.environ.get("LIT_DIFFUSION_DEBUG", "") not in ("", "0"):  # `--debug`: the traceback
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error_status
