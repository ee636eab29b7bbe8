"""One parsing style for every `lit-diffusion` command (LightningCLI's, which `fit` uses): a command is a typed
function; jsonargparse reads its signature and docstring into `--help`, and gives it `-c/--config FILE` (a
YAML of the command's arguments, as `--print_config` writes them; later flags override it).

A group of commands is a dict {name: function or dict}; `run` walks it by the leading words of argv, so
every leaf has its own parser, `--config` and `--print_config`.

Before jsonargparse sees argv, `normalise` keeps the flag spellings users have always typed:
`--batch-size` is `--batch_size`, a bare boolean flag `--overwrite` is `--overwrite=true`, and
`--no-progress` is `--progress=false`. Two conventions of a command function's signature:
- a parameter named `overrides` collects the options the command does not know, in order (and all
  tokens after a bare `--`): they are passed on to another parser (`slurm submit` -> `fit`);
- `@config_names_a("configs")`: the command's `-c FILE` has always named another YAML (training configs,
  a suite). A FILE that is not an arguments file of this command (a mapping of its parameter names) is
  given to that parameter instead, so `-c train.yaml` and `-c my_submit_args.yaml` both work.
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Union

Tree = Union[Callable, dict]
CONFIG_HELP = "a YAML file of this command's arguments (as --print_config writes them); later flags override it"
SPELLINGS = ("Options may be spelled with - or _ (--shard-size, --shard_size); a boolean option alone means true "
             "(--overwrite), --no-NAME means false (--no-progress).")
TRUE_FALSE = {"true", "false", "yes", "no", "1", "0", "on", "off"}


def config_names_a(parameter: str) -> Callable:
    """Decorator: this command's `-c FILE` names a YAML for `parameter` unless FILE holds its arguments."""
    def mark(function: Callable) -> Callable:
        function.config_parameter = parameter
        return function
    return mark


def describe(function: Callable) -> str:
    """The docstring without its Args section (jsonargparse puts those under each option)."""
    from docstring_parser import parse as parse_docstring

    doc = parse_docstring(inspect.getdoc(function) or "")
    return "\n\n".join(part for part in (doc.short_description, doc.long_description) if part)


def build_parser(function: Callable, prog: str):
    from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

    class Formatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
        """Keeps the example lines of a description as written."""

    parser = ArgumentParser(prog=prog, description=describe(function), epilog=SPELLINGS, formatter_class=Formatter)
    other = getattr(function, "config_parameter", None)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help=CONFIG_HELP if not other else
                        f"the YAML of --{other}, as always; or a YAML of this command's arguments (as --print_config "
                        "writes them)")
    parser.add_function_arguments(function, as_positional=True, as_group=False, fail_untyped=True)
    return parser


def _options(parser) -> tuple[dict[str, Any], set[str]]:
    """{--option: action} and the set of boolean options of a parser."""
    options, booleans = {}, set()
    for action in parser._actions:
        for name in action.option_strings:
            options[name] = action
            if getattr(action, "_typehint", None) in (bool, Optional[bool]):
                booleans.add(name)
    return options, booleans


def _is_arguments_file(path: str, parameters: set[str]) -> bool:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and bool(data) and all(str(k).replace("-", "_") in parameters for k in data)


def normalise(argv: list[str], parser, function: Callable) -> tuple[list[str], list[str]]:
    """(argv in jsonargparse's spelling, the options passed on to `overrides`); see the module docstring."""
    options, booleans = _options(parser)
    signature = inspect.signature(function).parameters
    passes_on = "overrides" in signature
    config_parameter = getattr(function, "config_parameter", None)
    # surplus positionals fill the optional positional-or-keyword parameters: `pairs NOISE TARGET`
    required = [n for n, p in signature.items() if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
    optional = [n for n, p in signature.items() if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]
    out, passed, positionals = [], [], 0
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--" and passes_on:  # everything after it belongs to the other parser
            passed += argv[i:]
            break
        if not token.startswith("-") or token == "--" or re.fullmatch(r"-[\d.].*", token):
            if passes_on:
                passed.append(token)  # a value of a passed-on option
            elif positionals >= len(required) and positionals - len(required) < len(optional):
                out += [f"--{optional[positionals - len(required)]}", token]
            else:
                out.append(token)
            positionals += int(not passes_on)
            continue
        name, eq, value = token.partition("=")
        if name.startswith("--"):
            name = "--" + name[2:].replace("-", "_")
        if name in ("-c", "--config") and config_parameter:
            path = value if eq else (argv[i] if i < len(argv) else "")
            i += 0 if eq else 1
            is_arguments = _is_arguments_file(path, set(signature))
            append = "+" if f"--{config_parameter}+" in options else ""  # a list parameter collects every -c
            out.append(f"--config={path}" if is_arguments else f"--{config_parameter}{append}={path}")
            continue
        if name not in options and name.startswith("--no_") and "--" + name[5:] in booleans and not eq:
            out.append(f"--{name[5:]}=false")
        elif name not in options:
            (passed if passes_on else out).append(token)
        elif name in booleans and not eq:
            explicit = i < len(argv) and argv[i].lower() in TRUE_FALSE
            out.append(f"{name}={argv[i] if explicit else 'true'}")
            i += int(explicit)
        elif eq or (options[name].nargs in (None, 1) and name != "--print_config" and i < len(argv)):
            if not eq:  # its value may look like a flag (-1)
                value, i = argv[i], i + 1
            append = "+" if f"{name}+" in options else ""  # a list option: each use adds, as argparse's append did
            out += [f"{name}{append}={value}"] if name.startswith("--") else [name, value]
        else:
            out.append(name)
    return out, passed


def parse(function: Callable, argv: list[str], prog: str) -> dict[str, Any]:
    """The keyword arguments `function` would be called with for this argv (SystemExit for --help, errors)."""
    parser = build_parser(function, prog)
    argv, passed = normalise(list(argv), parser, function)
    arguments = parser.parse_args(argv).as_dict()
    arguments.pop("config", None)
    arguments.pop("__path__", None)
    if "overrides" in arguments:
        arguments["overrides"] = list(arguments["overrides"] or []) + passed
    return arguments


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


def command_line(words: list[str], arguments: dict[str, Any], *functions: Callable) -> list[str]:
    """`words` plus `--name value` for each argument that differs from its default in `functions`: a record
    in the output of how it was made (e.g. dataset.json's build command)."""
    defaults = {n: p.default for f in functions for n, p in inspect.signature(f).parameters.items()}
    line = list(words)
    for name, value in arguments.items():
        if name in defaults and value != defaults[name]:
            line += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return line
