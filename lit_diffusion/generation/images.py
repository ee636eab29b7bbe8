"""Samples in [-1, 1] as 8-bit images: one quantisation, one grid layout, one PNG writer."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> the 8-bit values an image file would hold, as floats in [0, 255] (x's device)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8."""
    return quantize(x.float()).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """(B, H, W, C) uint8 -> one (rows*(H+gap)+gap, columns*(W+gap)+gap, C) image; columns default to a square."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = -(-n // columns)
    canvas = np.zeros((rows * (h + gap) + gap, columns * (w + gap) + gap, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, columns)
        top, left = gap + r * (h + gap), gap + q * (w + gap)
        canvas[top:top + h, left:left + w] = image
    return canvas


def save_png(array: np.ndarray, path) -> None:
    """(H, W, C) uint8 -> PNG, greyscale when C == 1."""
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
