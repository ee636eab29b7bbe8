"""Latent normalisation: x = normalize(z) and z = denormalize(x) round-trip in float64 for the scalar (SD-VAE) and
channel-wise (EDM2 / LightningDiT) forms; the loader's numpy path agrees with the torch path; and the statistics
`data encode` records follow the law of total variance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_diffusion.data.latent_encode import EncodeJob, normalization_record
from lit_diffusion.data.latent_normalization import Normalization

RECORDS = [{"kind": "scalar", "scale": 0.18215, "shift": 0.0}, {"kind": "scalar", "scale": 2.5, "shift": -0.3},
           {"kind": "channel", "mean": [0.5, -1.0, 2.0, 0.0], "std": [2.0, 0.25, 1.5, 1.0]}, {"kind": "none"}]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["kind"] + str(r.get("scale", "")))
def test_round_trip_and_numpy_path(record):
    norm = Normalization(record)
    z = torch.randn(3, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3 + 1
    torch.testing.assert_close(norm.denormalize(norm.normalize(z)), z, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.from_numpy(norm.numpy(z[0].numpy())), norm.normalize(z[0:1])[0].float())


def test_the_closed_forms():
    z = torch.full((1, 4, 2, 2), 3.0)
    assert torch.allclose(Normalization(RECORDS[0]).normalize(z), torch.full_like(z, 3 * 0.18215))
    channel = Normalization(RECORDS[2]).normalize(z)[0, :, 0, 0]
    assert torch.allclose(channel, torch.tensor([(3 - 0.5) / 2, (3 + 1) / 0.25, (3 - 2) / 1.5, 3.0]))


def test_recorded_statistics_are_those_of_the_draws():
    # posterior means m with per-channel mean mu and variance v, posterior std s: z = m + s * eps has mean mu and
    # variance v + s^2 (law of total variance); the channel record standardises z, the scalar one scales it
    mu, var_z = np.array([1.0, -2.0]), np.array([4.0, 0.25])
    channel = normalization_record(EncodeJob(out="-", normalization="channel"), mu, var_z)
    assert channel == {"kind": "channel", "mean": [1.0, -2.0], "std": [2.0, 0.5]}
    scalar = normalization_record(EncodeJob(out="-"), mu, var_z)
    overall = (4.0 + 0.25) / 2 + (1 + 4) / 2 - ((1 - 2) / 2) ** 2  # E[var] + Var of the channel means
    assert scalar["scale"] == pytest.approx(1 / np.sqrt(overall), abs=1e-6)
    given = normalization_record(EncodeJob(out="-", scale=0.18215), mu, var_z)
    assert given == {"kind": "scalar", "scale": 0.18215, "shift": 0.0}


@pytest.mark.parametrize("bad, message", [({"kind": "scalar", "scale": 0.0}, "scale must be positive"),
                                          ({"kind": "channel", "mean": [0.0], "std": [-1.0]}, "std > 0"),
                                          ({"kind": "log"}, "scalar, channel or none")])
def test_bad_records_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Normalization(bad)
