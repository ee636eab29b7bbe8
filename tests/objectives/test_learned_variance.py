"""Improved DDPM's learned variance (Nichol & Dhariwal 2021): L_vlb against closed forms on Gaussian data,
the discretised decoder, the stop-gradient on the mean, and the option's errors."""
import math

import pytest
import torch
from torch import nn

from lit_diffusion.contract import Prediction, VariancePrediction
from lit_diffusion.objectives import DDPM
from lit_diffusion.objectives.learned_variance import DiscreteVLB, discretized_gaussian_nll
from lit_diffusion.objectives.paths import DiscreteVPPath

T = 1000


def step_constants(path, n):
    """beta_n, beta_tilde_n, posterior coefficient of x0 and alpha_bar_n for a 1-based step n, float64."""
    abar = torch.exp(path.log_alpha_bar())
    beta = 1 - abar[n] / abar[n - 1]
    beta_tilde = (1 - abar[n - 1]) / (1 - abar[n]) * beta
    coef_x0 = abar[n - 1].sqrt() * beta / (1 - abar[n])
    return float(beta), float(beta_tilde), float(coef_x0), float(abar[n])


@pytest.mark.parametrize("n, frac", [(2, 0.3), (50, 0.0), (400, 0.8), (T, 1.0)])
def test_vlb_term_at_the_exact_posterior_mean_equals_its_closed_form(n, frac):
    # data N(mu, s^2 I): E[x0 | x_n] and Var[x0 | x_n] are closed form, so is E[KL] for a fixed Sigma:
    # 0.5 (log Sigma / bt + bt / Sigma - 1 + c0^2 Var[x0 | x_n] / Sigma)  (nats per dimension)
    path, mu, s = DiscreteVPPath(T), 0.4, 0.7
    beta, bt, c0, abar = step_constants(path, n)
    g = torch.Generator().manual_seed(n)
    x0 = mu + s * torch.randn(200_000, 4, generator=g, dtype=torch.float64)
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    post_var = s**2 * (1 - abar) / (abar * s**2 + 1 - abar)
    x0_hat = mu + s**2 * math.sqrt(abar) / (abar * s**2 + 1 - abar) * (x_t - math.sqrt(abar) * mu)
    steps = torch.full((x0.shape[0],), n)
    term = DiscreteVLB(path, "gaussian").term(x0, x_t, x0_hat, torch.full_like(x0, frac), steps)
    sigma2 = math.exp(frac * math.log(beta) + (1 - frac) * math.log(bt))
    closed = 0.5 * (math.log(sigma2 / bt) + bt / sigma2 - 1 + c0**2 * post_var / sigma2) / math.log(2)
    assert float(term.mean()) == pytest.approx(closed, rel=1e-2, abs=1e-7)


def test_the_true_reverse_variance_minimises_the_vlb_term():
    # Gaussian data: q(x_{n-1} | x_n) has variance bt + c0^2 Var[x0 | x_n]; no other frac does better
    path, n, s = DiscreteVPPath(T), 300, 0.5
    beta, bt, c0, abar = step_constants(path, n)
    best = bt + c0**2 * s**2 * (1 - abar) / (abar * s**2 + 1 - abar)
    frac_star = (math.log(best) - math.log(bt)) / (math.log(beta) - math.log(bt))
    assert 0 < frac_star < 1
    g = torch.Generator().manual_seed(0)
    x0 = s * torch.randn(100_000, 2, generator=g, dtype=torch.float64)
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x0_hat = s**2 * math.sqrt(abar) / (abar * s**2 + 1 - abar) * x_t
    vlb, steps = DiscreteVLB(path, "gaussian"), torch.full((x0.shape[0],), n)
    scores = {f: float(vlb.term(x0, x_t, x0_hat, torch.full_like(x0, f), steps).mean())
              for f in (frac_star - 0.2, frac_star, frac_star + 0.2)}
    assert scores[frac_star] < min(scores[frac_star - 0.2], scores[frac_star + 0.2])
    assert scores[frac_star] == pytest.approx(0.5 * math.log(best / bt) / math.log(2), rel=1e-2)


def test_exact_mean_and_posterior_variance_give_zero_kl():
    path = DiscreteVPPath(T)
    x0, x_t = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    term = DiscreteVLB(path).term(x0, x_t, x0, torch.zeros_like(x0), torch.tensor([2, 10, T]))
    assert torch.equal(term, torch.zeros(3, dtype=torch.float64))


def test_discretized_decoder_is_a_distribution_over_the_256_levels():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, log_var in ((0.0, math.log(1e-4)), (0.93, math.log(0.5)), (-1.2, math.log(1e-6))):
        nll = discretized_gaussian_nll(levels, torch.full_like(levels, mean), torch.full_like(levels, log_var))
        assert float(torch.exp(-nll).sum()) == pytest.approx(1.0, abs=1e-9)
        i = min(max(int((levels - mean).abs().argmin()), 2), 253)  # interior bins next to the mean
        std, mid = math.exp(0.5 * log_var), levels[i - 1:i + 2]
        direct = torch.special.ndtr((mid + 1 / 255 - mean) / std) - torch.special.ndtr((mid - 1 / 255 - mean) / std)
        # a bin's probability is floored at 1e-12 as improved-diffusion's decoder (issue 28)
        assert torch.allclose(torch.exp(-nll[i - 1:i + 2]), direct.clamp(min=1e-12), rtol=1e-9, atol=1e-15)


class AffineVarianceNet(nn.Module):
    """mean channels a * x, variance channels b: two scalars, one per output half."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(0.3)), nn.Parameter(torch.tensor(-0.2))

    def forward(self, x, t, cond=None):
        return torch.cat([self.a * x, self.b.expand_as(x)], dim=1)


def test_hybrid_loss_trains_the_variance_only_through_the_vlb_and_the_mean_only_through_l_simple():
    x0 = torch.rand(16, 2, 4, 4) * 2 - 1
    grads = {}
    for weight in (0.0, 0.001, 1.0):
        net = AffineVarianceNet()
        DDPM(variance="learned_range", vlb_weight=weight).loss(net, x0, generator=torch.Generator().manual_seed(1)).sum().backward()
        grads[weight] = (float(net.a.grad), float(net.b.grad))
    assert grads[0.0][0] == grads[0.001][0] == grads[1.0][0]  # stop-gradient: the mean sees L_simple only
    assert grads[0.0][1] == 0.0 and grads[1.0][1] == pytest.approx(1000 * grads[0.001][1], rel=1e-5)


def test_predict_returns_the_variance_fraction_and_guidance_keeps_the_conditional_one():
    class Labelled(nn.Module):
        def forward(self, x, t, cond=None):
            v = (cond.float() / 10).reshape(-1, 1, 1, 1).expand_as(x)  # variance channel encodes the label
            return torch.cat([0.5 * x, v], dim=1)

    obj = DDPM(variance="learned_range", null_label=10)
    x = torch.randn(2, 1, 4, 4)
    pred = obj.predict(Labelled(), x, 0.5, torch.tensor([3, 4]))
    assert isinstance(pred, VariancePrediction) and torch.allclose(pred.var_frac[:, 0, 0, 0], torch.tensor([0.65, 0.7]))
    guided = obj.predictor(Labelled(), torch.tensor([3, 4]), guidance=2.0)(x, 0.5)
    assert torch.allclose(guided.var_frac, pred.var_frac)
    fixed = DDPM().predict(lambda x, t, c: 0.5 * x, x, 0.5)
    assert type(fixed) is Prediction
    assert torch.equal(DDPM(variance="fixed_large").predict(lambda x, t, c: 0.5 * x, x, 0.5).var_frac, torch.ones_like(x))


@pytest.mark.parametrize("kwargs, message", [
    ({"variance": "learned"}, "variance must be one of"),
    ({"variance": "learned_range", "discrete": False}, "set discrete=True"),
    ({"vlb_weight": -1.0}, "vlb_weight must be >= 0"),
    ({"vlb_decoder": "logistic"}, "vlb_decoder must be one of"),
])
def test_bad_options_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DDPM(**kwargs)


def test_a_network_without_the_variance_channels_is_told_to_double_out_channels():
    with pytest.raises(ValueError, match="Set the backbone's out_channels to 6"):
        DDPM(variance="learned_range").loss(lambda x, t, c: x, torch.zeros(2, 3, 4, 4))


def test_importance_sampled_steps_follow_the_root_mean_square_of_the_terms():
    from lit_diffusion.objectives.importance_steps import ImportanceSampledSteps

    sampler = ImportanceSampledSteps(num_steps=4, history=2, uniform_share=0.1)
    t = torch.tensor([1, 2, 3, 4, 1, 2, 3], dtype=torch.float32) / 4
    sampler.update(t, torch.tensor([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0]))
    assert not sampler.warm() and torch.equal(sampler.loss_weights(t), torch.ones(7))  # uniform until warm
    sampler.update(torch.tensor([1.0]), torch.tensor([0.0]))  # step 4 now holds 4, 0: rms sqrt(8)
    root = torch.tensor([1.0, 2.0, 3.0, 8 ** 0.5], dtype=torch.float64)
    p = 0.9 * root / root.sum() + 0.1 / 4
    assert torch.allclose(sampler.probabilities(), p)
    steps = torch.arange(1, 5, dtype=torch.float64) / 4
    assert torch.allclose(sampler.loss_weights(steps), 1 / (4 * p))  # sum_n p_n w_n f_n = mean_n f_n
    draws = sampler.sample(40_000, None, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(torch.bincount(torch.round(draws * 4).long(), minlength=5)[1:] / 40_000., p.float(), atol=0.01)
    sampler.update(torch.tensor([0.25, 0.25]), torch.tensor([5.0, 5.0]))  # a full history forgets the oldest
    assert float(sampler.probabilities()[0]) == pytest.approx(0.9 * 5 / (5 + 2 + 3 + 8 ** 0.5) + 0.025)


def test_importance_sampled_steps_train_through_the_hybrid_loss():
    from lit_diffusion.objectives.importance_steps import ImportanceSampledSteps

    sampler = ImportanceSampledSteps(num_steps=10, history=1)
    obj = DDPM(num_steps=10, schedule="cosine", variance="learned_range", time_sampler=sampler)
    for _ in range(20):
        obj.loss(AffineVarianceNet(), torch.rand(8, 1, 2, 2) * 2 - 1).sum().backward()
    assert sampler.warm() and not torch.allclose(sampler.probabilities(), torch.full((10,), 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs variance='learned_range'"):
        DDPM(num_steps=10, schedule="cosine", time_sampler=sampler)


def test_thresholding_cannot_silently_drop_a_learned_variance():
    with pytest.raises(ValueError, match="drop x0_threshold"):
        DDPM(variance="learned_range").sample(AffineVarianceNet(), torch.randn(2, 1, 4, 4), sampler="ddpm", nfe=2,
                                              x0_threshold="clip")


def test_the_decoder_floors_a_bins_probability_at_1e_12_as_improved_diffusion():
    """improved-diffusion's discretized_gaussian_log_likelihood clamps each probability at 1e-12, so a bin's NLL is
    at most -log(1e-12) = 27.631021 nats. Before, a mean 1.0 away under std 0.01 gave 4966 nats (bin 0.5,
    mean -0.5); an edge bin (x = 1, mean -1) 19928."""
    x = torch.tensor([0.5, 1.0, -1.0, 0.0], dtype=torch.float64)
    mean = torch.tensor([-0.5, -1.0, 1.0, 0.0], dtype=torch.float64)
    nll = discretized_gaussian_nll(x, mean, torch.full_like(x, math.log(1e-4)))
    assert torch.allclose(nll[:3], torch.full((3,), -math.log(1e-12), dtype=torch.float64), rtol=0, atol=1e-12)
    # a bin under the mean is untouched: -log P(|z| < 0.39) = 1.187
    assert float(nll[3]) == pytest.approx(-math.log(math.erf((1 / 255) / 0.01 / math.sqrt(2))), rel=1e-12)


def test_importance_history_receives_the_whole_loss_as_improved_diffusion_does():
    """improved-diffusion's train_util.py passes losses["loss"] (mse + rescaled vb) to update_with_local_losses,
    before the importance weights; the weights are those of the distribution the steps were drawn from. Before,
    the history held L_n alone."""
    from lit_diffusion.objectives.importance_steps import ImportanceSampledSteps
    from lit_diffusion.objectives.time_samplers import TimeSampler

    class Given(TimeSampler):
        def __init__(self, t):
            self.t = t

        def sample(self, batch_size, path, generator=None, device=None):
            return self.t

    sampler = ImportanceSampledSteps(num_steps=10, history=1)
    obj = DDPM(num_steps=10, schedule="cosine", variance="learned_range", time_sampler=sampler)
    x0, noise = torch.rand(8, 1, 2, 2) * 2 - 1, torch.randn(8, 1, 2, 2)
    net = AffineVarianceNet()
    got = obj.loss_with_diagnostics(net, x0, generator=torch.Generator().manual_seed(3), noise=noise)
    reference = DDPM(num_steps=10, schedule="cosine", variance="learned_range", time_sampler=Given(got.t))
    whole = reference.loss_with_diagnostics(net, x0, noise=noise).loss
    assert torch.allclose(got.loss, whole)  # weights 1 while the history is cold
    last = dict(zip(torch.round(got.t * 10).long().tolist(), whole.tolist()))  # history 1: the last one per step
    for n, value in last.items():
        assert float(sampler._squares[n - 1, 0]) == pytest.approx(value ** 2, rel=1e-6)
