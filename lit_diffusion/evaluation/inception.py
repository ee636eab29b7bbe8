"""Inception-v3 as a feature network: the published FID / KID / IS convention.

Two backends, both needing the weights, which are downloaded on a machine with internet access
(or copied there) and given by path:

* ``"clean-fid"`` (default): the TorchScript port of the TF Inception graph used by StyleGAN2-ADA
  and clean-fid, file ``inception-2015-12-05.pt``. Images are quantised to 8 bits, resized to
  299x299 with antialiased bicubic interpolation (torch's antialiased bicubic follows PIL's, the
  resize of clean-fid's "clean" mode) and normalised to (u - 128) / 128. Features: the 2048-d
  pool3 layer. Logits: pool3 times the 1008-way output weights without bias, as in the original
  IS code (Salimans et al. 2016).
* ``"torchmetrics"``: torchmetrics' ``NoTrainInceptionV3`` (the torch-fidelity port; needs the
  ``torch-fidelity`` package), weights file ``pt_inception-2015-12-05-6726825d.pth``; features
  "2048", logits "logits_unbiased".

Both take 1- or 3-channel images of any size (grey is repeated to RGB).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from lit_diffusion.data.dataset_json import file_sha256

from .feature_network import FeatureNetwork, check_images, to_uint8_range

CLEANFID_FILE = "inception-2015-12-05.pt"
CLEANFID_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
TORCHMETRICS_FILE = "pt_inception-2015-12-05-6726825d.pth"
TORCHMETRICS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + TORCHMETRICS_FILE
Backend = Literal["clean-fid", "torchmetrics"]
_FILES = {"clean-fid": (CLEANFID_FILE, CLEANFID_URL), "torchmetrics": (TORCHMETRICS_FILE, TORCHMETRICS_URL)}


def resolve_weights(weights_path: str | os.PathLike | None, backend: Backend) -> Path:
    """The weights file of ``backend``: ``weights_path`` itself, or that file inside the folder."""
    if backend not in _FILES:
        raise ValueError(f"InceptionFeatures: backend must be one of {sorted(_FILES)}, got {backend!r}")
    name, url = _FILES[backend]
    if weights_path is None:
        raise ValueError(
            f"InceptionFeatures: weights_path is required. The Inception-v3 weights are not bundled and this "
            f"code never downloads them: download {name} on a machine with internet access ({url}) and pass "
            f"its path (or its folder) as weights_path. Where no weights can be had, use the project's own "
            f"feature network (lit_diffusion.evaluation.features.load_or_train_classifier).")
    path = Path(weights_path).expanduser()
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise FileNotFoundError(f"InceptionFeatures: weights_path {weights_path!s}: no such file ({name} expected; "
                                f"download it from {url} on a machine with internet access)")
    return path


class InceptionFeatures(FeatureNetwork):
    """Inception-v3 (pool3 2048-d features, 1008 logits) from a local weights file."""

    num_features = 2048
    num_classes = 1008

    def __init__(self, weights_path: str | os.PathLike | None = None, backend: Backend = "clean-fid",
                 device: str | torch.device | None = None):
        super().__init__()
        path = resolve_weights(weights_path, backend)
        self.backend, self.weights_path = backend, path
        self.name = f"inception-v3-{backend}"
        self._fingerprint = f"{self.name}-{file_sha256(path)[:16]}"
        if backend == "clean-fid":
            self.model = torch.jit.load(str(path), map_location="cpu").eval()
            if not hasattr(self.model, "layers") or not hasattr(self.model, "output"):
                raise ValueError(f"InceptionFeatures: {path} is not the clean-fid / StyleGAN2-ADA Inception "
                                 f"TorchScript model (it lacks 'layers' or 'output')")
        else:
            try:
                from torchmetrics.image.fid import NoTrainInceptionV3
                self.model = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048", "logits_unbiased"],
                                                feature_extractor_weights_path=str(path))
            except ModuleNotFoundError as e:
                raise ModuleNotFoundError(f"InceptionFeatures: backend 'torchmetrics' needs the torch-fidelity "
                                          f"package (pip install torch-fidelity): {e}") from e
        if device is not None:
            self.to(device)
        self.eval()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = check_images(x, "InceptionFeatures", (1, 3)).to(self.device)
        u = to_uint8_range(x)  # (B, C, H, W) in [0, 255], 8-bit values
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        with torch.no_grad():
            if self.backend == "clean-fid":
                u = F.interpolate(u, size=(299, 299), mode="bicubic", align_corners=False, antialias=True)
                f = self.model.layers((u - 128) / 128).reshape(u.shape[0], 2048)  # pool3
                logits = f @ self.model.output.weight.T  # no output bias (original IS code)
            else:
                # forward() returns only the first feature; this returns all of features_list (it
                # resizes to 299 inside, bilinear with antialiasing)
                f, logits = self.model._torch_fidelity_forward(u.to(torch.uint8))
        return f.float(), logits.float()
