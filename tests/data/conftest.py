"""Fixtures for the data tests: real datasets (located by $LIT_DIFFUSION_SHARED_DATA, default the
``shared/data`` folder beside the repository), converted once per session into temporary folders."""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_helpers import build, extract
from lit_diffusion.data.dataset_json import read_dataset_json
from lit_diffusion.data.sources import ArrayImageSource, digits_source

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="session")
def _inferred_cache(tmp_path_factory):
    """The descriptions inferred for shards without dataset.json are cached in a scratch folder, not ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    before = os.environ.get("LIT_DIFFUSION_CACHE")
    os.environ["LIT_DIFFUSION_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("LIT_DIFFUSION_CACHE", None)
    else:
        os.environ["LIT_DIFFUSION_CACHE"] = before


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("LIT_DIFFUSION_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (path / "mnist").is_dir() or not (path / "cifar10").is_dir():
        pytest.skip(f"real datasets not found at {path} (set LIT_DIFFUSION_SHARED_DATA to the folder "
                    f"holding mnist/ and cifar10/)")
    return path


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """sklearn digits in 9 uneven shards (8 x 200 + 197)."""
    out = tmp_path_factory.mktemp("digits")
    build(digits_source(), out, shard_size=200)
    return out


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory) -> Path:
    """480 random 4x4 RGB images, 10 classes, in 7 uneven shards (6 x 70 + 60)."""
    out = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(480, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=480)
    source = ArrayImageSource("small", images, labels, [f"c{i}" for i in range(10)], {})
    build(source, out, shard_size=70)
    return out


@pytest.fixture
def damaged_copy(tmp_path, small_dir):
    """A fresh copy of ``small_dir`` to damage; returns (folder, dataset info)."""
    out = tmp_path / "small"
    shutil.copytree(small_dir, out)
    return out, read_dataset_json(out)


# ----------------------------------------------------------------- real data, once per session

@pytest.fixture(scope="session")
def mnist_root(shared_data, tmp_path_factory) -> Path:
    """The MNIST IDX files gunzipped into ROOT/MNIST/raw, as torchvision expects them."""
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (shared_data / "mnist").glob("*.gz"):
        with gzip.open(gz, "rb") as src, open(raw / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


@pytest.fixture(scope="session")
def mnist_shards(mnist_root, tmp_path_factory) -> dict[str, Path]:
    from lit_diffusion.data.sources import mnist_source

    out = tmp_path_factory.mktemp("mnist_shards")
    for split in ("train", "test"):
        build(mnist_source(mnist_root, split), out / split, shard_size=7000, workers=2)
    return {"train": out / "train", "test": out / "test"}


@pytest.fixture(scope="session")
def cifar_jpegs(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar10_jpg")
    for split in ("train", "test"):
        extract(shared_data / "cifar10" / f"cifar10-jpg-{split}.tar.gz", root)
    return root


@pytest.fixture(scope="session")
def cifar_shards(cifar_jpegs, tmp_path_factory) -> dict[str, Path]:
    from lit_diffusion.data.imagefolder import ImageFolderSource

    out = tmp_path_factory.mktemp("cifar10_shards")
    for split in ("train", "test"):
        build(ImageFolderSource(cifar_jpegs / split), out / split, shard_size=6000, workers=2)
    return {"train": out / "train", "test": out / "test"}
