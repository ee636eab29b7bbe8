"""Latent shards of `data encode` (posterior mean and std per image): every epoch draws fresh latents
z = mean + std * eps, an exact resume draws the same ones, flips choose the mirrored image's latent, validation
reads the posterior mean, and the recorded normalisation standardises the draws (law of total variance)."""
from __future__ import annotations

import pytest
import torch

from data_helpers import assert_same_batches, epoch_batches
from lit_diffusion.backbones.autoencoders import KLAutoencoder
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.latent_encode import EncodeJob, ShardImages, encode_dataset
from lit_diffusion.data.latent_normalization import Normalization
from lit_diffusion.data.latent_space import AutoencoderRecord
from lit_diffusion.data.ordered_reader import OrderedShardReader

RECORD = AutoencoderRecord(kind="framework", location="test", subfolder=None, weights_sha256="0" * 64, in_channels=1,
                           latent_channels=2, factor=1)


def _encode(images, encoder, out, latent_shape, **job):
    return encode_dataset(images, encoder, RECORD, latent_shape, EncodeJob(out=str(out), shard_size=700, batch_size=256,
                                                                          progress=False, **job), ["test"])


@pytest.fixture(scope="module")
def random_autoencoder():
    torch.manual_seed(0)
    return KLAutoencoder(in_channels=1, latent_channels=2, channels=(8, 16)).eval()


@pytest.fixture(scope="module")
def posterior_shards(digits_shards, random_autoencoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("latents")
    _encode(ShardImages(str(digits_shards)), random_autoencoder.encode, out, [2, 8, 8], normalization="channel")
    return out


def _dm(shards, **kw):
    return ShardDataModule(str(shards), batch_size=64, num_workers=0, shuffle_buffer=0, seed=3, **kw)


def _posterior(shards):
    """key -> (mean, std) as stored, read in order with the plain tensor reader (npy) and the std member."""
    from lit_diffusion.data.shardio import read_shard
    import io
    import numpy as np

    reader = OrderedShardReader.from_spec(str(shards), batch_size=64)
    out = {}
    for url, count in zip(reader.shards.urls, reader.shards.counts):
        for raw in read_shard(url, 0, count, count):
            load = lambda ext: torch.from_numpy(np.load(io.BytesIO(raw.members[ext])))  # noqa: E731
            out[raw.key] = (load("npy"), load("std.npy"))
    return out


def test_each_epoch_draws_fresh_latents_from_the_stored_posterior(posterior_shards):
    dm = _dm(posterior_shards)
    norm = Normalization(dm.info.build["latent"]["normalization"])
    posterior = _posterior(posterior_shards)
    epochs = [epoch_batches(dm) for _ in range(2)]
    draws = []
    for batches in epochs:
        by_key = {k: x for b in batches for k, x in zip(b["key"], b["x"])}
        draws.append(by_key)
        z = torch.stack([norm.denormalize(by_key[k][None])[0] for k in by_key])
        mean = torch.stack([posterior[k][0] for k in by_key])
        std = torch.stack([posterior[k][1] for k in by_key])
        eps = (z - mean) / std
        assert abs(eps.mean().item()) < 0.02 and abs(eps.std().item() - 1) < 0.02  # eps ~ N(0, I)
    common = sorted(set(draws[0]) & set(draws[1]))
    assert len(common) > 1000
    assert all(not torch.equal(draws[0][k], draws[1][k]) for k in common)  # a fresh draw every epoch


def test_an_exact_resume_draws_the_same_latents(posterior_shards):
    full = _dm(posterior_shards)
    first = epoch_batches(full)
    second = epoch_batches(full)
    interrupted = _dm(posterior_shards)
    epoch_batches(interrupted)
    epoch_batches(interrupted, limit=9)
    resumed = _dm(posterior_shards)
    resumed.load_state_dict(interrupted.state_dict())
    assert_same_batches(epoch_batches(resumed), second[9:])
    assert not torch.equal(first[0]["x"], second[0]["x"])


def test_channel_normalisation_standardises_the_draws(posterior_shards):
    dm = _dm(posterior_shards)
    x = torch.cat([b["x"] for b in epoch_batches(dm)])  # (N, 2, 8, 8) normalised draws
    per_channel = x.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(2), atol=0.02)
    assert torch.allclose(per_channel.std(1), torch.ones(2), atol=0.02)


def test_validation_reads_the_normalised_posterior_mean(posterior_shards):
    dm = ShardDataModule(str(posterior_shards), val_shards=str(posterior_shards), batch_size=64, num_workers=0)
    norm = Normalization(dm.info.build["latent"]["normalization"])
    posterior = _posterior(posterior_shards)
    batch = next(iter(dm.val_dataloader()))
    for key, x in zip(batch["key"], batch["x"]):
        torch.testing.assert_close(x, norm.normalize(posterior[key][0][None])[0])


def test_flips_choose_the_latent_of_the_mirrored_image(digits_shards, tmp_path):
    # an encoder with std 0 (the latent is the 2x2-pooled image): every draw is exactly one of the stored means
    def pooled(x):
        mean = torch.nn.functional.avg_pool2d(x, 2).repeat(1, 2, 1, 1)
        return mean, torch.zeros_like(mean)

    _encode(ShardImages(str(digits_shards)), pooled, tmp_path, [2, 8, 8], hflip=True, normalization="none")
    posterior = _posterior(tmp_path)
    batches = epoch_batches(_dm(tmp_path, hflip=True))
    flipped = 0
    for key, x in (kx for b in batches for kx in zip(b["key"], b["x"])):
        mean = posterior[key][0]
        if not torch.equal(x, mean):
            # pooling commutes with the mirror: the flipped image's latent (up to float summation order)
            torch.testing.assert_close(x, mean.flip(-1), atol=1e-6, rtol=0)
            flipped += 1
    n = sum(len(b["key"]) for b in batches)
    assert 0.4 * n < flipped < 0.6 * n


def test_hflip_on_latents_encoded_without_flips_says_what_to_do(posterior_shards):
    with pytest.raises(ValueError, match="encoded without flips.*--hflip"):
        epoch_batches(_dm(posterior_shards, hflip=True), limit=1)
