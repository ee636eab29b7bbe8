"""Inception-v3 as a feature network: the published FID / KID / IS convention.

``FIDInceptionFeatures`` (the default for RGB datasets, offline): the TF FID Inception-v3 converted
from the ``[fid]`` extra's TorchScript into a plain module (fid_inception.py); 2048-d pool3 features,
no logits (so no Inception Score: IS needs the classifier head, which only the weights below have).

Resize convention, recorded as ``resize`` on every protocol card: clean-fid's "clean" mode (Parmar et
al. 2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation", sec. 3): quantise to 8
bits, resize each channel as floats with PIL's bicubic filter (antialiased when shrinking), clip to
[0, 255], then (u - 128) / 128. Chosen because it is the one convention whose result does not depend
on the resize library (torch's antialiased bicubic reproduces PIL's; a test checks it against
clean-fid's own resizer), and because the clean-fid backend below already used it, so both Inception
paths see the same pixels. torch-fidelity resizes with bilinear interpolation instead, which gives a
different (also valid, but not interchangeable) FID.

``InceptionFeatures``: two backends, both needing weights downloaded on a machine with internet
access (or copied there) and given by path:

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

from . import fid_inception
from .feature_network import FeatureNetwork, check_images, to_uint8_range

CLEANFID_FILE = "inception-2015-12-05.pt"
CLEANFID_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
TORCHMETRICS_FILE = "pt_inception-2015-12-05-6726825d.pth"
TORCHMETRICS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + TORCHMETRICS_FILE
Backend = Literal["clean-fid", "torchmetrics"]
_FILES = {"clean-fid": (CLEANFID_FILE, CLEANFID_URL), "torchmetrics": (TORCHMETRICS_FILE, TORCHMETRICS_URL)}
CLEAN_RESIZE = ("clean-fid 'clean': 8-bit quantise, PIL bicubic (antialiased) per channel as float to 299x299, "
                "clip [0, 255], (u - 128) / 128")
TORCH_FIDELITY_RESIZE = "torch-fidelity: 8-bit quantise, bilinear (antialiased) to 299x299 inside the network"


def clean_resize(u: torch.Tensor, size: int = 299) -> torch.Tensor:
    """(B, C, H, W) 8-bit values as floats -> (B, C, size, size) floats in [0, 255], clean-fid's "clean" resize.

    torch's antialiased bicubic uses PIL's kernel (a = -0.5) and support scaling, so it equals PIL's float
    resize up to float rounding.
    """
    if tuple(u.shape[2:]) != (size, size):
        u = F.interpolate(u, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return u.clamp(0, 255)


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
        self._sha256 = file_sha256(path)
        self._fingerprint = f"{self.name}-{self._sha256[:16]}"
        self.resize = CLEAN_RESIZE if backend == "clean-fid" else TORCH_FIDELITY_RESIZE
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

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = check_images(x, "InceptionFeatures", (1, 3)).to(self.device)
        u = to_uint8_range(x)  # (B, C, H, W) in [0, 255], 8-bit values
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        with torch.no_grad():
            if self.backend == "clean-fid":
                u = clean_resize(u)
                f = self.model.layers((u - 128) / 128).reshape(u.shape[0], 2048)  # pool3
                logits = f @ self.model.output.weight.T  # no output bias (original IS code)
            else:
                # forward() returns only the first feature; this returns all of features_list (it
                # resizes to 299 inside, bilinear with antialiasing)
                f, logits = self.model._torch_fidelity_forward(u.to(torch.uint8))
        return f.float(), logits.float()


class FIDInceptionFeatures(FeatureNetwork):
    """The TF FID Inception-v3 (converted once from the ``[fid]`` extra, see fid_inception.py): pool3
    features (B, 2048) of 1- or 3-channel images of any size, resized the clean-fid way; no logits (B, 0)."""

    name = "inception-v3-tf-fid"
    num_features = 2048
    num_classes = 0
    resize = CLEAN_RESIZE

    def __init__(self, weights_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 source: str | os.PathLike | None = None):
        super().__init__()
        # channels-last: ~1.6x faster on a CPU, same features to float rounding
        self.model = fid_inception.load_fid_inception(weights_dir, source=source).to(memory_format=torch.channels_last)
        self.weights_path = fid_inception.converted_path(weights_dir)
        if device is not None:
            self.to(device)
        self.eval()

    def train(self, mode: bool = True) -> "FIDInceptionFeatures":
        return super().train(False)  # a metric network never leaves eval mode (batch-norm statistics)

    @property
    def fingerprint(self) -> str:
        return f"{self.name}-{fid_inception.CONVERTED_SHA256[:16]}"

    @property
    def weights_sha256(self) -> str:
        return fid_inception.CONVERTED_SHA256  # load_fid_inception checked the file against it

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> the network's input (B, 3, 299, 299) in [-1, 0.9921875]."""
        u = to_uint8_range(check_images(x, "FIDInceptionFeatures", (1, 3)).to(self.device))
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        return ((clean_resize(u) - 128) / 128).contiguous(memory_format=torch.channels_last)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # at most 64 images per pass: a 299x299 Inception pass holds ~15 MB of activations per image
        x = check_images(x, "FIDInceptionFeatures", (1, 3))
        with torch.no_grad():
            f = torch.cat([self.model(self.network_input(part)) for part in x.split(64)])
        return f.float(), f.new_zeros(f.shape[0], 0)
