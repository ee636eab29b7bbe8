"""Shared fixtures for training tests: MNIST test shards built through the real data CLI (the digits are in
tests/conftest.py)."""
import pytest

from lit_diffusion.cli import main as cli_main


@pytest.fixture(scope="session")
def mnist_test_shards(tmp_path_factory):
    """The 10,000 MNIST test images from ../shared/data as shards (the split is enough for short runs)."""
    import os
    import shutil
    from pathlib import Path

    shared = Path(os.environ.get("LIT_DIFFUSION_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    if not (shared / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {shared} (set LIT_DIFFUSION_SHARED_DATA)")
    root = tmp_path_factory.mktemp("mnist-root")
    (root / "MNIST" / "raw").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared / "mnist" / name, root / "MNIST" / "raw" / name)
    out = tmp_path_factory.mktemp("mnist-test-shards")
    assert cli_main(["data", "build", "mnist", str(root), "--split", "test", "--out", str(out), "--no-progress",
                     "--workers", "0", "--overwrite"]) == 0
    return out
