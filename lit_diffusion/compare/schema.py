"""Plain YAML mappings parsed into typed dataclasses by jsonargparse (the parser of `fit` configs), every error
one line that names the key: an unknown key (at any depth of nested dataclass sections), a missing key, a value
of the wrong type. Checks of values (ranges, combinations) belong to each dataclass's __post_init__."""
from __future__ import annotations

import re
import types
from dataclasses import fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

KEY = "value"  # the dataclass is parsed under this key, so that jsonargparse instantiates it
TYPE_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
              bool: ("true or false", "booleans")}


class SchemaError(ValueError):
    """A mapping that does not fit the dataclass; the message names the key."""


def parse_as(cls: type, raw: Any, forms: dict[str, str] | None = None, nouns: dict[str, str] | None = None,
             skip: tuple[str, ...] = ()):
    """An instance of dataclass `cls` from the mapping `raw`. `forms`: how the value of a key is written (for
    type errors; the rest are described from their type hints), `nouns`: what a section's keys are called in
    the unknown-key error (default "SECTION keys"), `skip`: fields that are not keys of the mapping."""
    from jsonargparse import ArgumentError, ArgumentParser  # with exit_on_error=False it raises ArgumentError

    raw = _present(raw, cls, "", nouns or {}, skip)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, KEY, skip=set(skip))
    try:
        parsed = parser.parse_object({KEY: raw})
    except ArgumentError as error:
        raise SchemaError(_one_line(str(error), cls, raw, forms or {})) from None
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # jsonargparse < 4.49
    return getattr(instantiate(parsed), KEY)


def _present(raw: Any, cls: type, section: str, nouns: dict[str, str], skip: tuple[str, ...] = ()) -> dict:
    """`raw` without empty sections (`budget:` with nothing under it means the defaults), after checking that
    it is a mapping whose keys, and those of its sections, are fields of `cls`."""
    known = sorted(f.name for f in fields(cls) if f.name not in skip)
    if not isinstance(raw, dict):
        raise SchemaError(f"{section + ' ' if section else ''}must be a mapping of {known}, got {raw!r}")
    unknown = sorted(set(map(str, raw)) - set(known))
    if unknown:
        noun = nouns.get(section, f"{section} keys" if section else "keys")
        raise SchemaError(f"unknown {noun} {unknown}; known: {known}")
    hints = get_type_hints(cls)
    kept = {}
    for key, value in raw.items():
        if is_dataclass(hints[key]):
            if value is None:
                continue
            value = _present(value, hints[key], f"{section}.{key}" if section else key, nouns)
        kept[key] = value
    return kept


def _one_line(message: str, cls: type, raw: dict, forms: dict[str, str]) -> str:
    """jsonargparse's message (several lines, about its own parser keys) as one line about the user's key."""
    required = re.search(r"the following arguments are required: (.+)", message)
    if required:
        names = [n.strip().removeprefix(f"{KEY}.") for n in required.group(1).split(",")]
        return f"missing key {names[0]!r}" if len(names) == 1 else f"missing keys {names}"
    key = re.search(r'Parser key "([^"]+)"', message)
    if key:
        name = key.group(1).removeprefix(f"{KEY}.")
        form = forms.get(name) or _describe(_hint(cls, name))
        return f"{name} must be {form}, got {_value(raw, name)!r}"
    return message.strip().splitlines()[0]


def _hint(cls: type, dotted: str):
    hint = cls
    for part in dotted.split("."):
        hint = get_type_hints(hint)[part]
    return hint


def _value(raw: dict, dotted: str):
    for part in dotted.split("."):
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw


def _describe(hint, plural: bool = False) -> str:
    """A type hint in words: list[int] -> "a list of integers"."""
    origin, args = get_origin(hint), [a for a in get_args(hint) if a is not type(None)]
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in args)
    if origin is list:
        return ("lists" if plural else "a list") + f" of {_describe(args[0], True)}"
    if origin is dict:
        return ("mappings" if plural else "a mapping") + f" of {_describe(args[0], True)} to {_describe(args[1], True)}"
    if is_dataclass(hint):
        return "mappings" if plural else "a mapping"
    return TYPE_NAMES.get(hint, (getattr(hint, "__name__", str(hint)),) * 2)[plural]
