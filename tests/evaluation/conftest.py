"""Fixtures for the evaluation tests: small real datasets built once per session through the CLI,
and a cache folder of their own (nothing is written to ~/.cache)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from eval_helpers import SMALL
from lit_diffusion.cli import main as cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """$LIT_DIFFUSION_CACHE points at a session folder, so default cache paths stay out of ~/.cache."""
    monkeypatch.setenv("LIT_DIFFUSION_CACHE", str(tmp_path_factory.getbasetemp() / "lit_diffusion_cache"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval_cache")


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> dict[str, Path]:
    """sklearn's 8x8 digits: train (1438) and val (359) shards, built with the CLI."""
    out = tmp_path_factory.mktemp("digits")
    cli(["data", "build", "digits", "--out", str(out), "--shard-size", "200", "--val-fraction", "0.2",
         "--no-progress"])
    return {"train": out / "train", "val": out / "val"}


@pytest.fixture(scope="session")
def digits_net(digits, cache_dir):
    from lit_diffusion.evaluation.features import ClassifierConfig, load_or_train_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return load_or_train_classifier(digits["train"], digits["val"], cache_dir, ClassifierConfig(**SMALL),
                                        num_workers=0)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("LIT_DIFFUSION_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (path / "mnist").is_dir():
        pytest.skip(f"MNIST not found at {path}/mnist (set LIT_DIFFUSION_SHARED_DATA to the folder holding mnist/)")
    return path


@pytest.fixture(scope="session")
def mnist(shared_data, tmp_path_factory) -> dict[str, Path]:
    """MNIST train and test shards, built with `lit-diffusion data build mnist` from the four .gz files."""
    root = tmp_path_factory.mktemp("mnist_root")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (shared_data / "mnist").glob("*.gz"):
        shutil.copy(gz, raw / gz.name)
    out = tmp_path_factory.mktemp("mnist_shards")
    for split in ("train", "test"):
        cli(["data", "build", "mnist", str(root), "--split", split, "--out", str(out / split), "--no-progress"])
    return {"train": out / "train", "test": out / "test"}
