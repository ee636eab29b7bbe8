"""Backbone tests run tiny models: one intra-op thread is faster for them and avoids OpenMP spin-waiting
when the cores are shared (on a busy 2-core machine two threads made a debug U-Net forward ~50x slower)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_intra_op_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
