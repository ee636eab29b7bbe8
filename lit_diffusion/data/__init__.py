"""lit_diffusion.data: WebDataset shards: writing (converters), reading (a resumable DataModule).

Exports are imported lazily so that ``lit-diffusion data build`` does not pay for torch/Lightning.
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
    "ShardDataModule": "datamodule",
    "resolve_shards": "urls",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
