"""Named construction for the pluggable pieces (paths, parameterisations, samplers of t, weightings,
objectives): one lookup with one error message that lists the known names."""
from __future__ import annotations


def build(kind: str, registry: dict, name: str, **kwargs):
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; known: {sorted(registry)}")
    return registry[name](**kwargs)
