"""Adaptively weighted objectives (MeanFlow, sCM) log their unweighted error beside the weighted loss, which stays
near 1 by construction: train/raw_error in the training progress line and from sCM's loss (a MeanFlow fit through
the CLI logs it to the metrics CSV and the compare's progress line: tests/compare/test_side_by_side.py)."""
import types

import torch

from lit_diffusion.training.progress import TrainingProgress


def test_the_training_progress_line_shows_the_raw_error_after_the_loss():
    bar = TrainingProgress()
    bar._images, bar._start = 640, 0.0
    trainer = types.SimpleNamespace(global_step=10, max_steps=-1, estimated_stepping_batches=float("inf"),
                                    callback_metrics={"train/loss": torch.tensor(1.0),
                                                      "train/raw_error": torch.tensor(41.25)})
    line = bar._line(trainer, types.SimpleNamespace(images_seen=640, max_images=6400), now=10.0)
    assert line == "step 10 | 640/6,400 images (10%) | loss 1 | raw error 41.25 | 64 images/s | ETA 1:30"


def test_scm_reports_its_squared_error_before_weighting_and_normalisation():
    from lit_diffusion.backbones import UNet
    from lit_diffusion.objectives.continuous_consistency import ContinuousConsistency

    torch.manual_seed(0)
    net = UNet(in_channels=1, channels=8, channel_mult=[1], num_res_blocks=1, attention_levels=[], norm_groups=4)
    x0 = torch.randn(4, 1, 8, 8)
    outputs = []
    for tangent_c in (None, 0.1):  # without tangent normalisation the raw error is the loss's squared error
        objective = ContinuousConsistency(warmup_steps=0, tangent_c=tangent_c)
        with torch.no_grad():  # a non-zero adaptive weight, so that loss and raw error differ
            objective.adaptive_weight.linear.bias.fill_(0.5)
        outputs.append(objective.loss_with_diagnostics(net, x0, generator=torch.Generator().manual_seed(1)))
    plain, normalised = outputs
    raw = plain.extras["raw_error"]
    assert raw.shape == (4,) and not raw.requires_grad and bool((raw > 0).all())
    torch.testing.assert_close(plain.loss.detach(), torch.exp(torch.tensor(-0.5)) * raw + 0.5)
    torch.testing.assert_close(normalised.extras["raw_error"], raw)  # measured before the normalisation ...
    assert not torch.allclose(normalised.loss, plain.loss)  # ... which changes the loss
