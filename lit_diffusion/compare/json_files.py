"""The JSON files a comparison rewrites (the score caches RUN/eval.json, RUN/curve.json and RUN/ema_sweep.json, the
records RUN/train.json, OUT/compute.json and OUT/quality_vs_compute.json): written whole or not at all (a temporary
file in the same folder, fsync, rename: data.dataset_json.write_json_atomic), so that a full disk or a kill mid-write
leaves the previous file. A cache found torn anyway (an empty or cut file from an older version, a disk that lost
it) counts as missing: its scores are computed again, and one warning line names the file."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lit_diffusion.data.dataset_json import write_json_atomic

log = logging.getLogger("lit_diffusion.compare")

__all__ = ["read_cache", "write_json_atomic"]


def read_cache(path: Path) -> dict:
    """The mapping a cache file holds; {} when it is missing or torn (said in one warning line)."""
    if not path.is_file():
        return {}
    try:
        data: Any = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        why = "empty" if not path.stat().st_size else f"not valid JSON ({error})"
        log.warning("compare: cache %s is torn (%s): ignored, its scores are computed again", path, why)
        return {}
    if not isinstance(data, dict):
        log.warning("compare: cache %s holds a %s, not a mapping: ignored, its scores are computed again", path,
                    type(data).__name__)
        return {}
    return data
