"""The project objective equivalent to a diffusers scheduler config (scheduler/scheduler_config.json of a pipeline):
which beta schedule, which network target, which reverse-step variance. Only schedules the project's discrete VP
path reproduces exactly are accepted."""
from __future__ import annotations

import math

from lit_diffusion.published.imported import ddpm_objective
from lit_diffusion.published.keys import WrongCheckpoint

PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
VARIANCES = {"fixed_small": "fixed_small", "fixed_small_log": "fixed_small", "fixed_large": "fixed_large",
             "fixed_large_log": "fixed_large", "learned_range": "learned_range"}
HO_BETAS = (1e-4, 0.02, 1000)  # Ho et al. 2020 sec. 4: linear from 1e-4 to 0.02 over T = 1000


def _schedule(config: dict, where: str) -> tuple[str, int]:
    kind, steps = config.get("beta_schedule", "linear"), int(config.get("num_train_timesteps", 1000))
    if config.get("trained_betas") is not None:
        raise WrongCheckpoint(f"{where}: trained_betas (a custom beta table) has no equivalent path in lit_diffusion")
    if kind == "squaredcos_cap_v2":  # Nichol & Dhariwal 2021 eq. 17, betas capped at 0.999: the project's cosine
        return "cosine", steps
    betas = (float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02)), steps)
    if kind == "linear" and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(betas, HO_BETAS)):
        return "linear", steps
    raise WrongCheckpoint(f"{where}: beta_schedule={kind!r} with (beta_start, beta_end, T)={betas} is not one the "
                          f"project's discrete path computes (linear 1e-4..0.02 over 1000 steps, or "
                          f"squaredcos_cap_v2)")


def objective_from_scheduler(config: dict | None, learned: bool, num_classes: int, where: str,
                             variance: str | None = None) -> dict:
    """The DDPM objective (config data) of a scheduler config; None: the published defaults (eps, linear, 1000
    steps). A network with twice the data channels (`learned`) always gets Improved DDPM's learned variance (the
    project's DDPM reads those channels only then; diffusers' DiTPipeline drops them and samples with its
    scheduler's fixed variance instead). Otherwise `variance` ("fixed_small" / "fixed_large") overrides the
    scheduler's variance_type."""
    config = dict(config or {})
    schedule, steps = _schedule(config, where)
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise WrongCheckpoint(f"{where}: prediction_type={prediction!r} is not one of {sorted(PREDICTIONS)}")
    found = config.get("variance_type") or "fixed_small"
    if found not in VARIANCES:
        raise WrongCheckpoint(f"{where}: variance_type={found!r} is not one of {sorted(VARIANCES)}")
    chosen = "learned_range" if learned else (variance or VARIANCES[found])
    if learned and variance not in (None, "learned_range"):
        raise ValueError(f"--variance {variance}: this network outputs a learned variance (2x the data channels), "
                         f"which only variance=learned_range reads; leave --variance out")
    if not learned and chosen == "learned_range":
        raise ValueError(f"{where}: variance learned_range needs a network with twice the data channels; this one "
                         f"predicts the mean only: use fixed_small or fixed_large")
    return ddpm_objective(PREDICTIONS[prediction], schedule, chosen, num_classes, steps)
