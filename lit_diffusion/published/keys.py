"""Checking a published state dict against the keys and shapes a mapping expects, with one message that names
what is wrong: the first few missing and unexpected keys (and how many), and tensors of the wrong shape."""
from __future__ import annotations

from collections.abc import Mapping

import torch

SHOWN = 4  # keys named per kind of problem; the rest are counted


class WrongCheckpoint(ValueError):
    """The file or folder is not the published model it was read as (another architecture, missing keys, other
    channel counts). A ValueError, so that the CLI reports it in one line."""


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return f"{shown} and {len(keys) - SHOWN} more" if len(keys) > SHOWN else shown


def check_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source: str,
                     hint: str) -> None:
    """Raise WrongCheckpoint unless `state` has exactly the keys of `expected`, each of the expected shape."""
    missing = sorted(k for k in expected if k not in state)
    unexpected = sorted(k for k in state if k not in expected)
    shapes = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})" for k in expected
                    if k in state and tuple(state[k].shape) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} tensor(s) of another shape: {_listed(shapes)}")
    if problems:
        raise WrongCheckpoint(f"{source} does not fit: {'; '.join(problems)}. {hint}")


def require(config: Mapping, key: str, allowed, source: str, default=None):
    """config[key] (or default), raising WrongCheckpoint when it is not one of `allowed`."""
    value = config.get(key, default)
    if value not in allowed:
        raise WrongCheckpoint(f"{source}: {key}={value!r} is not supported by the import (supported: "
                              f"{list(allowed)}); this layout has no equivalent in lit_diffusion's backbones")
    return value
