"""Integer-step grids for discrete-time models: the network is evaluated only at the steps it was trained on.

A discrete-time path (DiscreteVPPath, imported DDPMs and DiTs) has T steps; step n sits at t = n / T, and the
0-based index its authors feed the network is k = n - 1 (objectives/paths.py). A sampler with N steps picks N of
the indices k in [0, T) by a named spacing, as the reference implementations define them:

- "linspace": round(linspace(0, T - 1, N)), numpy's round-half-to-even (diffusers `timestep_spacing="linspace"`;
  the rounded form of the evenly spaced grid in t, both ends included);
- "leading": k = i * (T // N), i = 0..N-1 (diffusers "leading", steps_offset 0);
- "trailing": round(T - i * T / N) - 1, i = 0..N-1 (diffusers "trailing"; Lin et al. 2024, "Common diffusion
  noise schedules and sample steps are flawed", Table 2), in numpy.arange's float arithmetic;
- "ddim": improved-diffusion's "ddimN" respacing: the smallest integer stride s with len(range(0, T, s)) == N,
  k = 0, s, 2s, ...; "ddim50" is accepted when 50 is the number of steps asked for.

The definitions are those of diffusers' DDIM and DDPM schedulers; its DPM-Solver scheduler spaces "linspace" and
"leading" over N + 1 points and drops the last, which this module does not follow (tests/samplers/
test_integer_steps.py compares DPM-Solver++ on the same indices).

Every step goes from the chosen index to the next one down (respaced as improved-diffusion and diffusers' DDPM
do: the step's beta is 1 - alpha_bar_s / alpha_bar_t) and the last one to t = 0, the clean data.
"""
from __future__ import annotations

import re

import torch

SPACINGS = ("linspace", "leading", "trailing", "ddim")


def is_discrete(path) -> bool:
    """Whether the path is a discrete-time one (it names its number of steps T)."""
    return isinstance(getattr(path, "num_steps", None), int)


def _ddim_stride_counts(num_steps: int) -> list[int]:
    """Every step count improved-diffusion's ddimN can make from T steps with an integer stride."""
    return sorted({len(range(0, num_steps, s)) for s in range(1, num_steps + 1)})


def step_indices(spacing: str, steps: int, num_steps: int) -> list[int]:
    """The 0-based step indices k (decreasing) of `steps` sampler steps on a T = num_steps model."""
    match = re.fullmatch(r"ddim(\d+)", spacing)
    if match and int(match.group(1)) != steps:
        raise ValueError(f"timestep spacing {spacing!r} names {match.group(1)} steps but {steps} are asked for: give "
                         f"spacing 'ddim' (the count follows the NFE) or ask for {match.group(1)} steps")
    name = "ddim" if match else spacing
    if name not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; known: {list(SPACINGS)} (integer steps of a "
                         f"discrete-time model) or a continuous grid 'uniform', 'edm', 'logsnr'")
    if not 1 <= steps <= num_steps:
        raise ValueError(f"timestep spacing {spacing!r} cannot place {steps} steps on a model of {num_steps} integer "
                         f"steps: ask for an NFE that gives 1..{num_steps} steps")
    if name == "linspace":
        # numpy.linspace's formula (i * step, the last point set to the end), then round half to even
        positions = torch.arange(steps, dtype=torch.float64) * ((num_steps - 1) / max(steps - 1, 1))
        positions[-1] = num_steps - 1 if steps > 1 else 0
        indices = torch.round(positions).long().tolist()
    elif name == "leading":
        indices = [i * (num_steps // steps) for i in range(steps)]
    elif name == "trailing":
        # numpy.arange(T, 0, -T / N)'s arithmetic (start + i * ((start - ratio) - start)), so that ties such as
        # 937.5 at T = 1000, N = 48 round as diffusers' do; but exactly N points, where arange's float length
        # sometimes gives N + 1 (T = 1000, N = 61), a last index of -1
        delta = (num_steps - num_steps / steps) - num_steps
        positions = num_steps + torch.arange(steps, dtype=torch.float64) * delta
        indices = (torch.round(positions).long() - 1).tolist()
    else:
        stride = next((s for s in range(1, num_steps + 1) if len(range(0, num_steps, s)) == steps), None)
        if stride is None:
            counts = _ddim_stride_counts(num_steps)
            below = max(c for c in counts if c < steps)
            above = min((c for c in counts if c > steps), default=None)
            raise ValueError(f"timestep spacing 'ddim' cannot make exactly {steps} of {num_steps} steps with an integer "
                             f"stride: ask for {below}{'' if above is None else f' or {above}'} steps, or use "
                             f"spacing 'linspace'")
        indices = list(range(0, num_steps, stride))
    return sorted(set(indices), reverse=True)


def integer_step_grid(spacing: str, steps: int, path, t_max: float = 1.0) -> torch.Tensor:
    """A (steps + 1,) float64 grid t = (k + 1) / T at the chosen indices, then 0 (the clean data). t_max < 1 (a
    partial trajectory, as SDEdit's) must be a step n0 / T: the spacing is then that of the chain's first n0 steps."""
    num_steps = path.num_steps
    top = round(t_max * num_steps)
    if not 1 <= top <= num_steps or abs(t_max * num_steps - top) > 1e-6:
        raise ValueError(f"a discrete-time model of T = {num_steps} steps starts a trajectory at one of its steps "
                         f"n / T: t0 = {t_max} is not one (e.g. {max(top, 1) / num_steps:g})")
    indices = step_indices(spacing, steps, top)
    if len(indices) != steps:  # only the linspace of N > T would repeat an index; refused above
        raise ValueError(f"timestep spacing {spacing!r} gives {len(indices)} distinct steps, not {steps}")
    n = torch.tensor(indices, dtype=torch.float64) + 1.0
    return torch.cat([n / num_steps, torch.zeros(1, dtype=torch.float64)])
