"""Feature networks of the evaluation (one import place for all of them).

* ``FeatureNetwork``: the contract, ``features(x) -> (B, F)``, ``logits(x) -> (B, K)`` for x
  (B, C, H, W) in [-1, 1], plus ``name`` and ``fingerprint`` (feature_network.py).
* ``ClassifierFeatures``, ``train_classifier``, ``load_or_train_classifier``: the project's own
  small CNN trained on the dataset, cached by dataset fingerprint (classifier.py). The offline,
  reproducible default.
* ``InceptionFeatures``: Inception-v3 from a local weights file, the published convention
  (inception.py).
"""
from __future__ import annotations

from .classifier import ClassifierConfig, ClassifierFeatures, SmallConvNet, load_or_train_classifier, train_classifier
from .feature_network import FeatureNetwork
from .inception import InceptionFeatures

__all__ = ["FeatureNetwork", "ClassifierConfig", "ClassifierFeatures", "SmallConvNet", "train_classifier",
           "load_or_train_classifier", "InceptionFeatures"]
