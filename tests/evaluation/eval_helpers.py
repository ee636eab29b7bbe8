"""Plain helpers of the evaluation tests, imported by name (`from conftest import ...` would resolve to
whichever folder's conftest pytest loaded last)."""
from __future__ import annotations

import torch

SMALL = dict(min_steps=150)  # enough for ~95% on digits in a few seconds


def read_all(shards, labels: bool = True):
    """(x, labels) of a whole split in stored order (one process)."""
    from lit_diffusion.evaluation.shards import SplitReader

    xs, ys = [], []
    for _, batch in SplitReader(shards, num_workers=0, labels=labels):
        xs.append(batch["x"])
        if labels:
            ys.append(batch["label"])
    return torch.cat(xs), (torch.cat(ys) if labels else None)
