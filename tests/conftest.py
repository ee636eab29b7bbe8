"""Shared pytest setup: GPU-only tests skip with a reason on machines without CUDA."""
import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2 on a 2-core machine: one intra-op thread per worker, or the workers' thread pools
    # oversubscribe the cores and small ops slow down many times over
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test: the test models are tiny, and on a shared 2-core machine two
    threads spin-wait on each other (a debug U-Net forward ran ~50x slower); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def digits_shards(tmp_path_factory):
    """Small real shards (the embedded digits at 16x16) built through the real data CLI."""
    from lit_diffusion.cli import main as cli_main

    out = tmp_path_factory.mktemp("digits16")
    assert cli_main(["data", "build", "digits", "--out", str(out), "--resolution", "16", "--no-progress", "--workers", "0",
                     "--overwrite"]) == 0
    return out
