"""Shard URLs: brace patterns, http(s) through curl, gzip-compressed shards, latent shards,
per-sample transforms."""
from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading

import numpy as np
import pytest
import torch

from data_helpers import assert_same_batches, build, epoch_batches, keys_of
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.sources import npz_source
from lit_diffusion.data.urls import resolve_shards


def test_brace_patterns_and_subsets(small_dir):
    shards = resolve_shards(f"{small_dir}/shard-{{000000..000006}}.tar")
    assert len(shards.urls) == 7 and shards.num_samples == 480
    subset = resolve_shards(f"{small_dir}/shard-{{000001..000002}}.tar::{small_dir}/shard-000006.tar")
    assert subset.counts == [70, 70, 60]
    dm = ShardDataModule(f"{small_dir}/shard-{{000001..000002}}.tar::{small_dir}/shard-000006.tar",
                         batch_size=10, num_workers=0)
    assert dm.steps_per_epoch == 20 and len(set(keys_of(epoch_batches(dm)))) == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl for http(s) shards")
def test_http_shards_read_like_local_ones(small_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(small_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        local = epoch_batches(ShardDataModule(str(small_dir), batch_size=16, num_workers=0, hflip=True))
        for spec in (f"{base}/dataset.json", f"{base}/shard-{{000000..000006}}.tar"):
            remote = epoch_batches(ShardDataModule(spec, batch_size=16, num_workers=0, hflip=True))
            assert_same_batches(local, remote)
    finally:
        server.shutdown()


def test_gzip_compressed_shards(small_dir, tmp_path):
    for path in small_dir.glob("shard-*.tar"):
        with open(path, "rb") as src, gzip.open(tmp_path / (path.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    plain = epoch_batches(ShardDataModule(str(small_dir), batch_size=16, num_workers=0))
    packed = epoch_batches(ShardDataModule(f"{tmp_path}/shard-{{000000..000006}}.tar.gz",
                                           dataset_json=str(small_dir / "dataset.json"), batch_size=16,
                                           num_workers=0))
    assert_same_batches(plain, packed)


def test_latent_shards_apply_scale_and_shift_and_flip(tmp_path):
    z = np.random.default_rng(0).normal(size=(64, 4, 3, 3)).astype(np.float32)
    np.savez(tmp_path / "z.npz", latents=z)
    build(npz_source(tmp_path / "z.npz", images_key="latents"), tmp_path / "lat", latent=(0.18215, 0.5))
    flipped_any = False
    for batch in epoch_batches(ShardDataModule(str(tmp_path / "lat"), batch_size=16, num_workers=0, hflip=True)):
        assert batch["x"].shape == (16, 4, 3, 3) and "label" not in batch
        for key, x in zip(batch["key"], batch["x"]):
            expected = (torch.from_numpy(z[int(key)]) - 0.5) * 0.18215
            assert torch.allclose(x, expected) or torch.allclose(x, expected.flip(-1))
            flipped_any |= not torch.allclose(x, expected)
    assert flipped_any


def noisy(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random transform that draws only from the per-sample generator."""
    return x + 0.01 * torch.randn(x.shape, generator=generator)


def test_transforms_are_deterministic_and_resumable(small_dir):
    def dm():
        return ShardDataModule(str(small_dir), batch_size=8, num_workers=2, transform=noisy, seed=2)

    full = epoch_batches(dm())
    assert_same_batches(full, epoch_batches(dm()))
    first = dm()
    head = epoch_batches(first, limit=9)
    resumed = dm()
    resumed.load_state_dict(first.state_dict())
    assert_same_batches(head + epoch_batches(resumed), full)
    plain = {k: v for b in epoch_batches(ShardDataModule(str(small_dir), batch_size=8, num_workers=0, seed=2))
             for k, v in zip(b["key"], b["x"])}
    diffs = torch.stack([x - plain[k] for b in full for k, x in zip(b["key"], b["x"])])
    assert 0.005 < diffs.std() < 0.015
