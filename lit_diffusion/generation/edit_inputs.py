"""The inputs of an edit (`lit-diffusion sample --edit ... --input IMAGES --mask MASKS`), read into the model's space.

IMAGES: a folder of PNGs (every *.png, in file-name order: the order `lit-diffusion sample` writes), one PNG, or an
array file: .npy, .pt (a tensor) or .npz (its `images`, and `labels` when present: `samples.npz` of
`lit-diffusion sample`). 8-bit pixels become u / 127.5 - 1, as the data pipeline decodes them (data/decode.py);
float arrays are read as the model's data already ([-1, 1] for images). Arrays are (N, C, H, W) or (N, H, W, C)
(one image may drop N; a 1-channel one C).
MASKS: the same kinds, of one mask for every image or one per image: white (255) or 1 where the model paints,
black (0) or 0 where the input is kept (the convention of inpainting tools such as diffusers'); anything else is
refused. A mask is 1 channel (every channel alike) or as many as the images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

ARRAY_SUFFIXES = (".npy", ".npz", ".pt")


def _pngs(location: Path, what: str) -> list[Path]:
    if location.is_dir():
        files = sorted(location.glob("*.png"))
        if not files:
            raise ValueError(f"{what} folder {location} holds no .png files: give PNGs or a .npy/.pt/.npz file")
        return files
    return [location]


def _read_png(path: Path, channels: int, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{what} {path} cannot be read as an image ({err}): give PNG files") from None
    wanted = {1: ("L", "1"), 3: ("RGB",)}.get(channels, ())
    if image.mode not in wanted:
        kind = "greyscale" if channels == 1 else f"{channels}-channel"
        raise ValueError(f"{what} {path} is a {image.mode} image; this model's samples have {channels} channel(s): "
                         f"give {kind} PNGs")
    array = np.array(image.convert("L") if image.mode == "1" else image)
    if image.mode == "1":
        array = np.where(array > 0, 255, 0).astype(np.uint8)
    return array[..., None] if array.ndim == 2 else array  # (H, W, C)


def _read_array(path: Path, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    if path.suffix == ".pt":
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{what} {path} holds a {type(value).__name__}, not a tensor")
        return value.numpy(), None
    value = np.load(path, allow_pickle=False)
    if isinstance(value, np.lib.npyio.NpzFile):
        key = next((k for k in ("images", "mask", "masks") if k in value.files), None)
        if key is None and len(value.files) != 1:
            raise ValueError(f"{what} {path} has arrays {value.files}; expected 'images' (and 'labels') or one array")
        labels = value["labels"] if "labels" in value.files and len(value["labels"]) else None
        return value[key or value.files[0]], labels
    return value, None


def _layout(array: np.ndarray, shape: tuple[int, ...], what: str, location) -> np.ndarray:
    """(N, C, H, W) from the accepted layouts, or an error naming both shapes. Models of other data (vectors,
    tensors) take arrays of their sample shape, with or without N."""
    if len(shape) != 3:
        array = array[None] if array.ndim == len(shape) else array
        if array.shape[1:] != tuple(shape):
            raise ValueError(f"{what} {location} has shape {tuple(array.shape)}; this model's samples have shape "
                             f"{tuple(shape)}: give an array of (N, {', '.join(map(str, shape))})")
        return array
    c, h, w = shape
    if array.ndim in (2, 3):
        array = array[None]
    if array.ndim == 3 and c == 1:
        array = array[:, None]
    if array.ndim == 4 and array.shape[1:] == (h, w, c) and array.shape[1:] != (c, h, w):
        array = np.transpose(array, (0, 3, 1, 2))
    if array.ndim == 4 and c == 1 and array.shape[1:] == (h, w, 1):
        array = np.transpose(array, (0, 3, 1, 2))
    if array.ndim != 4 or array.shape[2:] != (h, w) or array.shape[1] not in ((1, c) if what == "mask" else (c,)):
        raise ValueError(f"{what} {location} has shape {tuple(array.shape)}; this model's samples are {c}x{h}x{w} "
                         f"(C x H x W): give {what}s of {h}x{w} pixels")
    return array


def _gather(location: str, shape, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(location).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist: give a folder of PNGs or a .npy/.pt/.npz file")
    if path.is_file() and path.suffix in ARRAY_SUFFIXES:
        array, labels = _read_array(path, what)
    elif len(shape) != 3:
        raise ValueError(f"this model's samples are tensors of shape {tuple(shape)}, not images: give the {what}s as a "
                         f".npy/.pt/.npz file")
    else:
        arrays = [_read_png(p, shape[0] if what == "image" else 1, what) for p in _pngs(path, what)]
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"the {what}s in {path} have different sizes: give {shape[1]}x{shape[2]} images")
        array, labels = np.stack(arrays), None
    return _layout(np.asarray(array), tuple(shape), what, path), labels


def read_images(location: str, shape, image_data: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images (N, C, H, W) float32 in the model's space, labels (N,) int64 or None)."""
    array, labels = _gather(location, shape, "image")
    if array.dtype == np.uint8:
        images = torch.from_numpy(array).float().div_(127.5).sub_(1.0)  # as data/decode.py
    elif np.issubdtype(array.dtype, np.floating):
        images = torch.from_numpy(array.astype(np.float32))
        if image_data and bool((images.abs() > 1.0 + 1e-6).any()):
            raise ValueError(f"input {location} holds floats outside [-1, 1], the model's image range: give 8-bit "
                             "images (uint8 0..255) or floats scaled to [-1, 1]")
    else:
        raise ValueError(f"input {location} holds {array.dtype} values: give uint8 pixels or floats in [-1, 1]")
    if labels is not None:
        labels = torch.from_numpy(np.asarray(labels).astype(np.int64))
        if labels.shape != (len(images),):
            raise ValueError(f"input {location} has {len(labels)} labels for {len(images)} images")
    return images, labels


def read_mask(location: str, images: torch.Tensor) -> torch.Tensor:
    """(1 or N, 1 or C, H, W) bool: True where the model paints."""
    array, _ = _gather(location, images.shape[1:], "mask")
    values = np.unique(array)
    allowed = (0, 255) if array.dtype == np.uint8 and values.max(initial=0) > 1 else (0, 1)
    if array.dtype != np.bool_ and not set(values.tolist()) <= set(allowed):
        raise ValueError(f"mask {location} holds values {values[:6].tolist()}{'...' if len(values) > 6 else ''}; a "
                         f"mask must be binary: white (255) or 1 where the model paints, black (0) where the input "
                         f"is kept")
    if len(array) not in (1, len(images)):
        raise ValueError(f"mask {location} has {len(array)} masks for {len(images)} input images: give one mask for "
                         f"all of them, or one per image")
    return torch.from_numpy(array != 0)
