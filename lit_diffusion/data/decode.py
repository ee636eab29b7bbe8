"""Reader side: check and decode raw samples, and collate them into batches.

Images (png/jpg) are decoded to uint8 (C, H, W) with torchvision's decoder op (about 3x faster
than PIL on 32x32 JPEGs; see ``imagecodec.py``) or PIL (``decoder="pil"``, and the fallback); a
batch is stacked and flipped in uint8 and converted once to float32 in [-1, 1] (``u / 127.5 - 1``). ``npy`` tensors become float32; latent tensors are
normalised as ``(z - latent_shift) * latent_scale`` from dataset.json.

A batch is a dict::

    "x"      float32 (B, C, H, W) or (B, D)   images in [-1, 1], tensors, or the pair's target
    "label"  int64 (B,)                        when the dataset is labeled (and labels are on)
    "noise"  float32 like "x"                  pair datasets only (e.g. reflow couplings)
    "key"    list[str]                         sample keys (source index), for tracing
"""
from __future__ import annotations

import io
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from .dataset_json import DatasetInfo
from .errors import DataError
from .imagecodec import torchvision_decoder
from .infer import read_label
from .shardio import RawSample

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Decoder = Literal["torchvision", "pil"]

def _decode_pil(data: bytes) -> torch.Tensor:
    im = Image.open(io.BytesIO(data))
    a = np.asarray(im)
    if a.dtype != np.uint8:
        return torch.from_numpy(a.astype(np.int32))[None]  # rejected by the dtype check
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def image_decoder(name: Decoder) -> Callable[[bytes], torch.Tensor]:
    if name == "torchvision":
        return torchvision_decoder() or _decode_pil
    if name == "pil":
        return _decode_pil
    raise ValueError(f"decoder must be 'torchvision' or 'pil', got {name!r}")


class SampleDecoder:
    """Checks members (cheap, before the shuffle) and decodes (after it), per dataset.json."""

    def __init__(self, info: DatasetInfo, labels: bool, decoder: Decoder = "torchvision"):
        if labels and not info.labeled:
            raise ValueError("labels=True but dataset.json has num_classes=0 (an unlabeled dataset)")
        self._decode_image = image_decoder(decoder)
        self.info, self.labels, self.decoder = info, labels, decoder
        self.shape = tuple(info.shape)
        self.scale = 1.0 if info.latent_scale is None else float(info.latent_scale)
        self.shift = 0.0 if info.latent_shift is None else float(info.latent_shift)
        if info.kind == "image":
            self.required: tuple[str, ...] = ()
        elif info.kind == "tensor":
            self.required = ("npy",)
        else:
            self.required = ("noise.npy", "target.npy")
        # shards read without dataset.json (infer.py): the image member and label source chosen there
        inferred = info.build.get("inferred") or {}
        self.image_key: str | None = inferred.get("image")
        self.label_key: str = inferred.get("label") or "cls"
        self.resolution: int | None = inferred.get("resolution")
        if labels:
            self.required += (self.label_key.split(":")[0],)

    def check(self, raw: RawSample) -> None:
        """Raise DataError when a member is missing (no decoding)."""
        m = raw.members
        if self.info.kind == "image" and self.image_key is not None and self.image_key not in m:
            raise DataError(f"missing {self.image_key!r} (members are {sorted(m)})", raw.url, raw.key)
        if self.info.kind == "image" and not any(e in m for e in IMAGE_EXTS):
            raise DataError(f"missing image member (png/jpg); members are {sorted(m)}", raw.url, raw.key)
        for ext in self.required:
            if ext not in m:
                raise DataError(f"missing {ext!r} (members are {sorted(m)})", raw.url, raw.key)

    def _image(self, raw: RawSample) -> torch.Tensor:
        ext = self.image_key or next(e for e in IMAGE_EXTS if e in raw.members)
        data = raw.members[ext]
        try:
            x = self._decode_image(data)
        except Exception as e:  # decoders raise RuntimeError, OSError, ValueError, ...
            raise DataError(f"cannot decode {ext} ({len(data)} bytes): {e}", raw.url, raw.key) from None
        if x.dtype != torch.uint8:
            raise DataError(f"image decodes to {x.dtype}, expected 8-bit", raw.url, raw.key)
        if self.resolution is not None:
            x = fit_image(x, self.shape)
        if tuple(x.shape) != self.shape:
            if self.image_key is None:
                raise DataError(f"wrong shape: image is {list(x.shape)}, dataset.json says {list(self.shape)}",
                                raw.url, raw.key)
            raise DataError(f"wrong shape: image is {list(x.shape)}, the first image's is {list(self.shape)}; "
                            f"pass resolution (--data.resolution R, or --resolution R) to resize every image",
                            raw.url, raw.key)
        return x

    def _array(self, raw: RawSample, ext: str) -> torch.Tensor:
        try:
            a = np.load(io.BytesIO(raw.members[ext]), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"cannot decode {ext}: {e}", raw.url, raw.key) from None
        if tuple(a.shape) != self.shape:
            raise DataError(f"wrong shape: {ext} is {list(a.shape)}, dataset.json says {list(self.shape)}",
                            raw.url, raw.key)
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise DataError(f"{ext} has dtype {a.dtype}, expected real numbers", raw.url, raw.key)
        return torch.from_numpy(a.astype(np.float32))

    def _label(self, raw: RawSample) -> int:
        y = read_label(raw, self.label_key)
        if not 0 <= y < self.info.num_classes:
            raise DataError(f"label {y} out of range [0, {self.info.num_classes})", raw.url, raw.key)
        return y

    def decode(self, raw: RawSample) -> dict:
        out: dict = {"key": raw.key}
        kind = self.info.kind
        if kind == "image":
            out["x"] = self._image(raw)
        elif kind == "tensor":
            out["x"] = (self._array(raw, "npy") - self.shift) * self.scale
        else:
            out["x"] = self._array(raw, "target.npy")
            out["noise"] = self._array(raw, "noise.npy")
        if self.labels:
            out["label"] = self._label(raw)
        return out


def fit_image(x: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Center-crop uint8 (C, H, W) to the largest square, resize (antialiased) to shape's H x W and match its
    channels: shards of mixed sizes and modes read with a given resolution."""
    c, h, w = x.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top:top + side, left:left + side]
    if c in (2, 4):  # grey+alpha, RGBA: the alpha channel is dropped, as in PIL's convert("L"/"RGB")
        x, c = x[:c - 1], c - 1
    if c != shape[0]:  # grey <-> RGB, as PIL's convert does (ITU-R 601 luma)
        x = x.expand(3, -1, -1) if c == 1 else (x.float() * torch.tensor([0.299, 0.587, 0.114])[:, None, None]
                                                ).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if (side, side) != tuple(shape[1:]):
        y = torch.nn.functional.interpolate(x[None].float(), size=tuple(shape[1:]), mode="bicubic", antialias=True)
        x = y[0].round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


def collate(samples: Sequence[dict], flips: np.ndarray, kind: str,
            transform: Transform | None = None, seeds: np.ndarray | None = None) -> dict:
    """Stack decoded samples; flip rows where ``flips``; images to float in [-1, 1]."""
    x = torch.stack([s["x"] for s in samples])
    rows = torch.from_numpy(np.flatnonzero(flips))
    if len(rows):
        x[rows] = x[rows].flip(-1)
    if kind == "image":
        x = x.to(torch.float32).div_(127.5).sub_(1.0)
    if transform is not None:
        x = torch.stack([transform(x[i], torch.Generator().manual_seed(int(seeds[i]))) for i in range(len(x))])
    batch = {"x": x}
    if "noise" in samples[0]:
        batch["noise"] = torch.stack([s["noise"] for s in samples])
    if "label" in samples[0]:
        batch["label"] = torch.tensor([s["label"] for s in samples], dtype=torch.int64)
    batch["key"] = [s["key"] for s in samples]
    return batch
