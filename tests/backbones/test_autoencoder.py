"""The autoencoders behind one contract (encode -> (mean, std), decode): the framework's KL autoencoder (shapes,
its KL term against torch.distributions) and the diffusers AutoencoderKL adapter (against diffusers itself)."""
from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lit_diffusion.backbones.autoencoders import KLAutoencoder, weights_digest
from lit_diffusion.backbones.autoencoders.kl_autoencoder import kl_to_standard_normal


def test_kl_autoencoder_shapes_and_posterior():
    torch.manual_seed(0)
    ae = KLAutoencoder(in_channels=3, latent_channels=4, channels=(8, 16, 16))
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    mean, std = ae.encode(x)
    assert mean.shape == std.shape == (2, 4, 4, 3) and ae.latent_shape([3, 16, 12]) == [4, 4, 3]
    assert (std > 0).all()
    assert ae.decode(mean).shape == x.shape
    recon, m, logvar = ae(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(m, mean)
    torch.testing.assert_close(torch.exp(0.5 * logvar), std)
    with pytest.raises(ValueError, match="multiples"):
        ae.encode(torch.zeros(1, 3, 10, 10))


def test_kl_term_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    reference = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(kl_to_standard_normal(mean, logvar), reference)


def test_weights_digest_names_the_weights():
    a = KLAutoencoder(1, 2, (8, 16))
    b = KLAutoencoder(1, 2, (8, 16))
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.decoder[0].bias[0] += 1e-3
    assert weights_digest(a) != weights_digest(b)


def test_diffusers_adapter_agrees_with_diffusers(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    from lit_diffusion.backbones.autoencoders import DiffusersAutoencoder

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                                  layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=16).eval()
    vae.save_pretrained(tmp_path / "vae")
    adapter = DiffusersAutoencoder.from_pretrained(str(tmp_path / "vae"))
    assert (adapter.in_channels, adapter.latent_channels, adapter.factor) == (3, 4, 2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        mean, std = adapter.encode(x)
        torch.testing.assert_close(mean, posterior.mean)
        torch.testing.assert_close(std, posterior.std)
        torch.testing.assert_close(adapter.decode(mean), vae.decode(posterior.mean).sample)
    assert weights_digest(adapter.vae) == weights_digest(vae)


def test_a_missing_diffusers_folder_is_named(tmp_path):
    pytest.importorskip("diffusers")
    from lit_diffusion.backbones.autoencoders import DiffusersAutoencoder

    with pytest.raises(FileNotFoundError, match="does not exist or holds no config.json"):
        DiffusersAutoencoder.from_pretrained(str(tmp_path / "nowhere"))
