"""One parsing style for every `lit-diffusion` command (LightningCLI's, which `fit` uses): a command is a typed
function; jsonargparse reads its signature and docstring into `--help`, and gives it `-c/--config FILE` (a
YAML of the command's arguments, as `--print_config` writes them; later flags override it).

This module turns argv into a typed function's keyword arguments and imports nothing of lit_diffusion, so that
whatever holds command-line words (the commands, a compare suite's `build:` list) parses them the same way;
`lit_diffusion.commands.parsing` walks groups of commands and reports their errors.

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
import re
from pathlib import Path
from typing import Any, Callable, Optional

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
