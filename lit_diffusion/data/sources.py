"""Dataset sources that the writer converts into shards.

A source is an indexable collection of :class:`Item` (one image, tensor or tensor pair, with an
optional label). Array-backed sources live here (MNIST IDX, CIFAR pickles, ``.npz`` arrays,
scikit-learn's digits, tensor pairs); the file-backed ImageFolder is in ``imagefolder.py``.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BuildError

MNIST_CLASSES = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                 "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]


@dataclass
class Item:
    """One source sample. Exactly one of ``image_bytes``, ``image``, ``array``, ``target`` is set."""

    origin: str  # where it came from, for error messages
    label: int | None = None
    image_bytes: bytes | None = None  # an encoded png/jpg file, copied when possible
    ext: str | None = None  # "png" or "jpg" for image_bytes
    image: np.ndarray | None = None  # uint8 HxW or HxWxC
    array: np.ndarray | None = None  # a tensor sample (kind "tensor")
    noise: np.ndarray | None = None  # kind "pair": noise and target of a coupling
    target: np.ndarray | None = None


class Source:
    """Base class: ``len(source)``, ``source.item(i)``, plus what dataset.json needs."""

    name = "source"
    kind = "image"  # image | tensor | pair
    native_format: str | None = None  # "png"/"jpg" when items are encoded files that can be copied
    class_names: list[str] = []

    def __len__(self) -> int:
        raise NotImplementedError

    def item(self, index: int) -> Item:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"source": self.name}


class ArrayImageSource(Source):
    """uint8 images in memory, (N, H, W) or (N, H, W, C), with optional int labels."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray | None,
                 class_names: list[str], description: dict):
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise BuildError(f"{name}: images must be uint8 (N,H,W) or (N,H,W,C), got {images.dtype} "
                             f"{images.shape}")
        if images.ndim == 4 and images.shape[3] not in (1, 3):
            raise BuildError(f"{name}: images must have 1 or 3 channels, got shape {images.shape}")
        _check_labels(name, labels, len(images), class_names)
        self.name, self.images, self.labels = name, images, labels
        self.class_names = list(class_names)
        self.description = description

    def __len__(self) -> int:
        return len(self.images)

    def item(self, index: int) -> Item:
        image = self.images[index]
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        label = None if self.labels is None else int(self.labels[index])
        return Item(origin=f"{self.name}[{index}]", label=label, image=image)

    def describe(self) -> dict:
        return dict(self.description, source=self.name)


class ArrayTensorSource(Source):
    """Float (or other numeric) arrays stored as ``npy`` tensors: (N, C, H, W) or (N, D)."""

    kind = "tensor"
    native_format = None

    def __init__(self, name: str, arrays: np.ndarray, labels: np.ndarray | None,
                 class_names: list[str], description: dict):
        if arrays.ndim not in (2, 4):
            raise BuildError(f"{name}: tensors must be (N, C, H, W) or (N, D), got shape {arrays.shape}")
        _check_labels(name, labels, len(arrays), class_names)
        self.name, self.arrays, self.labels = name, arrays, labels
        self.class_names = list(class_names)
        self.description = description

    def __len__(self) -> int:
        return len(self.arrays)

    def item(self, index: int) -> Item:
        label = None if self.labels is None else int(self.labels[index])
        return Item(origin=f"{self.name}[{index}]", label=label, array=np.asarray(self.arrays[index]))

    def describe(self) -> dict:
        return dict(self.description, source=self.name)


class TensorPairSource(Source):
    """Couplings (noise, target), e.g. for reflow: two arrays of the same shape, paired by index."""

    kind = "pair"

    def __init__(self, noise: np.ndarray, target: np.ndarray, labels: np.ndarray | None,
                 class_names: list[str], description: dict):
        if noise.shape != target.shape:
            raise BuildError(f"pairs: noise shape {noise.shape} differs from target shape {target.shape}")
        if target.ndim not in (2, 4):
            raise BuildError(f"pairs: arrays must be (N, C, H, W) or (N, D), got shape {target.shape}")
        _check_labels("pairs", labels, len(target), class_names)
        self.name, self.noise, self.target, self.labels = "pairs", noise, target, labels
        self.class_names = list(class_names)
        self.description = description

    def __len__(self) -> int:
        return len(self.target)

    def item(self, index: int) -> Item:
        label = None if self.labels is None else int(self.labels[index])
        return Item(origin=f"pairs[{index}]", label=label,
                    noise=np.asarray(self.noise[index]), target=np.asarray(self.target[index]))

    def describe(self) -> dict:
        return dict(self.description, source=self.name)


def _check_labels(name: str, labels, n: int, class_names: list[str]) -> None:
    if labels is None:
        if class_names:
            raise BuildError(f"{name}: class names given but no labels")
        return
    if labels.ndim != 1 or len(labels) != n:
        raise BuildError(f"{name}: {len(labels)} labels for {n} samples (labels must be 1-D)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise BuildError(f"{name}: labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise BuildError(f"{name}: labels range {labels.min()}..{labels.max()} does not fit "
                         f"{len(class_names)} classes")


# ---------------------------------------------------------------- MNIST (IDX files)

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) of unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise BuildError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise BuildError(f"{path}: IDX header says {dims} ({int(np.prod(dims))} bytes), "
                         f"file holds {len(data) - offset} bytes (truncated?)")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise BuildError(f"mnist: {stem}[.gz] not found in {root}, {root / 'raw'} or {root / 'MNIST' / 'raw'}")


def mnist_source(root: str | Path, split: str = "train") -> ArrayImageSource:
    """MNIST IDX files as torchvision lays them out (``root/MNIST/raw``), or any folder holding them."""
    if split not in ("train", "test"):
        raise BuildError(f"mnist: split must be 'train' or 'test', got {split!r}")
    root, prefix = Path(root), "train" if split == "train" else "t10k"
    images_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise BuildError(f"mnist: images {images.shape} and labels {labels.shape} do not match")
    return ArrayImageSource("mnist", images, labels.astype(np.int64), MNIST_CLASSES,
                            {"root": str(root), "split": split,
                             "files": [images_path.name, labels_path.name]})


# ---------------------------------------------------------------- CIFAR python pickles

_CIFAR = {
    "cifar10": dict(folder="cifar-10-batches-py", meta="batches.meta", names=b"label_names",
                    labels=b"labels", train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"]),
    "cifar100": dict(folder="cifar-100-python", meta="meta", names=b"fine_label_names",
                     labels=b"fine_labels", train=["train"], test=["test"]),
}


def _cifar_reader(root: Path, folder: str):
    """Return read(name) -> bytes for the pickle files, from a folder or the downloaded tar.gz."""
    if root.is_file():
        tar = tarfile.open(root, "r:*")

        def read(name: str) -> bytes:
            try:
                return tar.extractfile(f"{folder}/{name}").read()
            except KeyError:
                raise BuildError(f"{root}: member {folder}/{name} not found") from None
        return read
    base = root / folder if (root / folder).is_dir() else root

    def read(name: str) -> bytes:
        if not (base / name).is_file():
            raise BuildError(f"{base / name}: not found (expected the CIFAR python pickles)")
        return (base / name).read_bytes()
    return read


def cifar_source(root: str | Path, split: str = "train", variant: str = "cifar10") -> ArrayImageSource:
    """CIFAR-10/100 "python version" pickles: the ``cifar-*-python.tar.gz`` or its extracted folder.

    Pickles can run code when loaded: only convert files from a trusted download.
    """
    if split not in ("train", "test"):
        raise BuildError(f"{variant}: split must be 'train' or 'test', got {split!r}")
    spec, root = _CIFAR[variant], Path(root)
    if not root.exists():
        raise BuildError(f"{variant}: {root} does not exist")
    read = _cifar_reader(root, spec["folder"])
    meta = pickle.loads(read(spec["meta"]), encoding="bytes")
    class_names = [n.decode() if isinstance(n, bytes) else n for n in meta[spec["names"]]]
    images, labels = [], []
    for name in spec[split]:
        batch = pickle.loads(read(name), encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise BuildError(f"{variant}: {name}: data has shape {data.shape}, expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[spec["labels"]], dtype=np.int64))
    return ArrayImageSource(variant, np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels),
                            class_names, {"root": str(root), "split": split})


# ---------------------------------------------------------------- numpy arrays

def _to_nhwc(name: str, images: np.ndarray, layout: str) -> np.ndarray:
    if images.ndim == 3:
        return images
    if images.ndim != 4:
        raise BuildError(f"{name}: images must be 3-D or 4-D, got shape {images.shape}")
    if layout == "auto":
        if images.shape[3] in (1, 3):
            layout = "NHWC"
        elif images.shape[1] in (1, 3):
            layout = "NCHW"
        else:
            raise BuildError(f"{name}: cannot tell the layout of shape {images.shape}; pass --layout")
    return images if layout == "NHWC" else images.transpose(0, 2, 3, 1)


def npz_source(path: str | Path, images_key: str | None = None, labels_key: str | None = None,
               class_names: list[str] | None = None, layout: str = "auto") -> Source:
    """Arrays from an ``.npz``: uint8 images become png/jpg samples, other dtypes npy tensors."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"npz: {path} not found")
    arrays = np.load(path, allow_pickle=False)
    keys = list(arrays.keys())
    images_key = images_key or next((k for k in ("images", "x", "data", "arr_0") if k in keys), None)
    if images_key not in keys:
        raise BuildError(f"npz: {path}: no images array {images_key!r}; arrays are {keys} (--images-key)")
    if labels_key is None:
        labels_key = next((k for k in ("labels", "y") if k in keys), None)
    elif labels_key not in keys:
        raise BuildError(f"npz: {path}: no labels array {labels_key!r}; arrays are {keys}")
    data = arrays[images_key]
    labels = None if labels_key is None else arrays[labels_key]
    if labels is not None and class_names is None:
        class_names = [str(c) for c in range(int(labels.max()) + 1)] if len(labels) else []
    class_names = class_names or []
    desc = {"path": str(path), "images_key": images_key, "labels_key": labels_key}
    if data.dtype == np.uint8 and layout != "tensor":
        return ArrayImageSource("npz", _to_nhwc("npz", data, layout), labels, class_names, desc)
    return ArrayTensorSource("npz", data, labels, class_names, desc)


def digits_source() -> ArrayImageSource:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16 scaled to 0..255); no download."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return ArrayImageSource("digits", images, digits.target.astype(np.int64),
                            [str(c) for c in range(10)], {"origin": "sklearn.datasets.load_digits"})


def _load_array(path: Path, key: str | None) -> np.ndarray:
    if not path.is_file():
        raise BuildError(f"pairs: {path} not found")
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    with np.load(path, allow_pickle=False) as z:
        if key not in z:
            raise BuildError(f"pairs: {path} has no array {key!r}; arrays are {list(z.keys())}")
        return z[key]


def pairs_source(noise: str | Path, target: str | Path | None = None, labels: str | Path | None = None,
                 class_names: list[str] | None = None) -> TensorPairSource:
    """Tensor pairs from two ``.npy`` files, or one ``.npz`` with arrays ``noise`` and ``target``."""
    noise_path = Path(noise)
    target_path = Path(target) if target is not None else noise_path
    noise_arr = _load_array(noise_path, "noise")
    target_arr = _load_array(target_path, "target")
    label_arr = None
    if labels is not None:
        label_arr = np.asarray(_load_array(Path(labels), "labels")).astype(np.int64)
        if class_names is None:
            class_names = [str(c) for c in range(int(label_arr.max()) + 1)]
    return TensorPairSource(noise_arr, target_arr, label_arr, class_names or [],
                            {"noise": str(noise_path), "target": str(target_path),
                             "labels": None if labels is None else str(labels)})


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()
