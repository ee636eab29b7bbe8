"""On-disk caches of the evaluation: trained feature networks and reference statistics.

The cache root is ``$LIT_DIFFUSION_CACHE`` when set, else ``~/.cache/lit_diffusion``; feature
networks live in ``<root>/features`` and reference statistics in ``<root>/reference``. A
``cache_dir`` argument given to a function replaces that folder. Entries are named by a hash of
everything that determines their content, and written atomically (write, then rename), so ranks
or jobs racing on the same entry leave one complete file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CACHE_ENV = "LIT_DIFFUSION_CACHE"


def cache_folder(kind: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``<root>/<kind>`` (root: $LIT_DIFFUSION_CACHE or ~/.cache/lit_diffusion)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "lit_diffusion"
    return base / kind


def cache_key(fields: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable description."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)
