"""lit_diffusion.data: WebDataset shards: writing (converters), reading (a resumable DataModule,
and a Lightning-free reader of a split in stored order for validation and evaluation).

Exports are imported lazily so that ``lit-diffusion data build`` does not pay for torch/Lightning;
only ``ShardDataModule`` (``datamodule.py``) imports Lightning.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "DataError": "errors",
    "BuildError": "errors",
    "DatasetInfo": "dataset_json",
    "ShardEntry": "dataset_json",
    "read_dataset_json": "dataset_json",
    "BuildOptions": "writer",
    "build_dataset": "writer",
    "resolve_encode_options": "writer",
    "EncodeOptions": "encode",
    "ImageFolderSource": "imagefolder",
    "mnist_source": "sources",
    "cifar_source": "sources",
    "npz_source": "sources",
    "digits_source": "sources",
    "pairs_source": "sources",
    "EpochPlan": "plan",
    "ShardIterable": "stream",
    "OrderedShardReader": "ordered_reader",
    "ShardDataModule": "datamodule",
    "resolve_shards": "urls",
    "InferOptions": "infer",
}

# spelled out (not sorted(_EXPORTS)) so that tools and readers see the names; a test keeps both in step
__all__ = [
    "BuildError",
    "BuildOptions",
    "DataError",
    "DatasetInfo",
    "EncodeOptions",
    "EpochPlan",
    "ImageFolderSource",
    "InferOptions",
    "OrderedShardReader",
    "ShardDataModule",
    "ShardEntry",
    "ShardIterable",
    "build_dataset",
    "cifar_source",
    "digits_source",
    "mnist_source",
    "npz_source",
    "pairs_source",
    "read_dataset_json",
    "resolve_encode_options",
    "resolve_shards",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
