"""DDPM (Ho et al. 2020) on a variance-preserving path, discrete (T steps) or continuous time, with the
reverse-step variance fixed (beta-tilde or beta) or learned (Nichol & Dhariwal 2021; learned_variance.py)."""
from __future__ import annotations

import torch

from lit_diffusion.contract import PathCoefficients, Prediction, VariancePrediction
from lit_diffusion.objectives.base import DiffusionObjective, LossOutput, checked_data, checked_output
from lit_diffusion.objectives.importance_steps import ImportanceSampledSteps
from lit_diffusion.objectives.learned_variance import DECODERS, DiscreteVLB, split_variance_channels, variance_fraction
from lit_diffusion.objectives.parameterisation import QuantityParameterisation
from lit_diffusion.objectives.paths import DiscreteVPPath, VPCosinePath, VPLinearPath
from lit_diffusion.objectives.time_samplers import DiscreteUniformTime, TimeSampler, UniformTime
from lit_diffusion.objectives.weightings import UniformWeighting, Weighting

VARIANCES = ("fixed_small", "fixed_large", "learned_range")


class DDPM(DiffusionObjective):
    """Args:
        prediction: network target, "eps" (Ho et al.), "x0" or "v" (Salimans & Ho 2022).
        schedule: beta schedule, "linear" or "cosine" (Nichol & Dhariwal 2021).
        discrete: T-step discrete time (t = n / T) or the continuous VP SDE (Song et al. 2021).
        num_steps: T for discrete time.
        time_sampler / weighting: override the defaults (discrete or continuous uniform t; weight 1).
        variance: the reverse-step variance DDPM ancestral sampling uses: "fixed_small" (the posterior's
            beta-tilde), "fixed_large" (beta; Ho et al. 2020 sec. 3.2) or "learned_range" (Nichol & Dhariwal
            2021, eq. 15: the backbone outputs 2x the data channels, the second half interpolating between the
            two in log space; discrete time only). ODE samplers (DDIM, Euler, Heun, DPM-Solver) use the mean only.
        vlb_weight: lambda of L_hybrid = L_simple + lambda L_vlb (their eq. 16; 0.001); learned_range only.
        vlb_decoder: the n = 1 term of L_vlb: "discretized" (8-bit images in [-1, 1]) or "gaussian" (continuous data).
        With variance="learned_range", time_sampler may be ImportanceSampledSteps (their sec. 3.3): steps drawn
        by sqrt(E[L_n^2]) and each loss weighted by 1 / (T p_n); the default is uniform n. Its history records
        each sample's whole hybrid loss (L_simple + lambda T L_n), what improved-diffusion's training loop
        records, not L_n alone as the paper's text reads.
    """

    # Ancestral sampling, as Ho et al. 2020 sample (here respaced to 50 steps). Measured against DDIM@50 at the
    # quickstart's budget (FD, 500 samples): eps/linear 86.6 vs 495.0 (85.2 with x0 clipping), v/cosine 17.3 vs
    # 19.6; on a 2-D Gaussian in a plain loop (tests/objectives/test_every_objective_plain_loop.py) eps/linear's
    # moment error 0.19 vs 1.20: the ODE samplers need eps at high noise more accurately than 400 steps give.
    default_sampler = "ddpm"
    default_nfe = 50

    def __init__(self, prediction: str = "eps", schedule: str = "linear", discrete: bool = True,
                 num_steps: int = 1000, time_sampler: TimeSampler | None = None,
                 weighting: Weighting | None = None, label_dropout: float = 0.0, null_label: int | None = None,
                 variance: str = "fixed_small", vlb_weight: float = 0.001, vlb_decoder: str = "discretized"):
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"DDPM: prediction must be 'eps', 'x0' or 'v', got {prediction!r}")
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"DDPM: schedule must be 'linear' or 'cosine', got {schedule!r}")
        if variance not in VARIANCES:
            raise ValueError(f"DDPM: variance must be one of {list(VARIANCES)}, got {variance!r}")
        if variance == "learned_range" and not discrete:
            raise ValueError("DDPM: variance='learned_range' is defined on the discrete chain; set discrete=True")
        if not vlb_weight >= 0:
            raise ValueError(f"DDPM: vlb_weight must be >= 0, got {vlb_weight}")
        if vlb_decoder not in DECODERS:
            raise ValueError(f"DDPM: vlb_decoder must be one of {list(DECODERS)}, got {vlb_decoder!r}")
        if isinstance(time_sampler, ImportanceSampledSteps) and (
                variance != "learned_range" or time_sampler.num_steps != num_steps):
            raise ValueError(f"DDPM: ImportanceSampledSteps samples steps by their L_vlb terms; it needs "
                             f"variance='learned_range' and num_steps={num_steps} (got variance={variance!r}, "
                             f"num_steps={time_sampler.num_steps})")
        if discrete:
            path = DiscreteVPPath(num_steps, schedule)
            time_sampler = time_sampler or DiscreteUniformTime(num_steps)
        else:
            path = VPLinearPath() if schedule == "linear" else VPCosinePath()
            time_sampler = time_sampler or UniformTime()
        super().__init__(path, QuantityParameterisation(prediction), time_sampler,
                         weighting or UniformWeighting(), label_dropout, null_label)
        self.variance, self.vlb_weight = variance, float(vlb_weight)
        self.vlb = DiscreteVLB(path, vlb_decoder) if variance == "learned_range" else None

    @property
    def default_x0_threshold(self) -> str | None:
        """"clip" for eps prediction with a fixed variance, as Ho et al. 2020 sample (and diffusers' DDPM/DDIM
        schedulers by default): their x0 = (x_t - sigma eps) / alpha explodes where alpha is small. Measured at the
        quickstart budget (benchmarks/x0_threshold_digits.py, DDIM@32): eps/linear FD 495.8 -> 88.5, eps/cosine
        1875.8 -> 78.7, while v/linear 18.0 -> 18.6 and v/cosine are not helped; dynamic thresholding was worse
        than clipping for each. A learned variance keeps none (clipping drops it in ancestral sampling)."""
        return "clip" if self.parameterisation.kind == "eps" and self.variance == "fixed_small" else None

    def loss_with_diagnostics(self, net, x0, cond=None, generator=None, noise=None) -> LossOutput:
        """L_simple, plus vlb_weight * T * L_n with the mean detached for a learned variance (their eq. 16)."""
        if self.vlb is None:
            return super().loss_with_diagnostics(net, x0, cond, generator=generator, noise=noise)
        x0 = checked_data(x0)
        t = self.time_sampler.sample(x0.shape[0], self.path, generator=generator, device=x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} does not match x0 shape {tuple(x0.shape)}")
        c = PathCoefficients.at(self.path, t, x0)
        x_t = c.alpha * x0 + c.sigma * noise
        raw, v = self._split(net(self.parameterisation.net_input(x_t, c), c.t, self.drop_labels(cond, generator)), x_t)
        target = self.parameterisation.target(Prediction(x0, noise.to(x0.dtype)), x_t, c)
        simple = self.weighting(c, self.parameterisation) * (raw - target).pow(2).flatten(1).mean(1)
        x0_hat = self.parameterisation.to_prediction(raw.detach(), x_t, c).x0  # stop-gradient on the mean
        vlb = self.vlb.term(x0, x_t, x0_hat, variance_fraction(v), self.vlb.step_index(c.t))
        loss = simple + self.vlb_weight * self.path.num_steps * vlb
        if isinstance(self.time_sampler, ImportanceSampledSteps):  # their sec. 3.3: unbiased reweighting
            # the history gets each sample's whole loss before reweighting, as improved-diffusion's training loop
            # passes losses["loss"] (mse + vb) to update_with_local_losses (train_util.py)
            weights = self.time_sampler.loss_weights(t).to(loss.dtype)  # of the distribution t was drawn from
            self.time_sampler.update(t, loss)
            loss = loss * weights
        return LossOutput(loss, t)

    def predict(self, net, x_t: torch.Tensor, t, cond=None) -> Prediction | VariancePrediction:
        """(x0, eps), plus var_frac for DDPM ancestral sampling unless the variance is fixed_small."""
        if self.variance == "fixed_small":
            return super().predict(net, x_t, t, cond)
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        c = PathCoefficients.at(self.path, t, x_t)
        out = net(self.parameterisation.net_input(x_t, c), c.t, cond)
        if self.variance == "fixed_large":
            pred = self.parameterisation.to_prediction(checked_output(out, x_t), x_t, c)
            return VariancePrediction(pred.x0, pred.eps, torch.ones_like(pred.x0))
        raw, v = self._split(out, x_t)
        pred = self.parameterisation.to_prediction(raw, x_t, c)
        return VariancePrediction(pred.x0, pred.eps, variance_fraction(v))

    def sample_with_info(self, net, noise, sampler: str | None = None, *args, x0_threshold: str | None = None,
                         **kwargs):
        if x0_threshold is not None and self.variance != "fixed_small" and (sampler or self.default_sampler) == "ddpm":
            raise ValueError(f"x0 thresholding rebuilds (x0, eps) without the {self.variance} variance, so DDPM "
                             f"ancestral sampling would silently fall back to beta-tilde; drop x0_threshold or use "
                             f"variance='fixed_small'")
        return super().sample_with_info(net, noise, sampler, *args, x0_threshold=x0_threshold, **kwargs)

    @staticmethod
    def _split(out, x_t) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            raise TypeError(f"the network returned {type(out).__name__}; expected a floating-point Tensor")
        raw, v = split_variance_channels(out, x_t)
        return raw.to(x_t.dtype), v.to(x_t.dtype)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, variance={self.variance})"
