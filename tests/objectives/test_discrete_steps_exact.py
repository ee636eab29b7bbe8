"""A discrete path read at its steps: float32 t = n / T (what the step samplers return) gives the float64 table's
alpha_bar_n, not an interpolation towards step n - 1 or n + 1 (issue 28)."""
import pytest
import torch

from lit_diffusion.objectives import DiscreteVPPath
from lit_diffusion.objectives.importance_steps import ImportanceSampledSteps
from lit_diffusion.objectives.time_samplers import DiscreteUniformTime


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_float32_steps_read_the_float64_table_at_the_step(schedule):
    """Every n = 1..1000: alpha and sigma at float32 t = n / T are the float64 values rounded once to float32
    (max relative error 6.0e-8, half a float32 ulp); before, 2.6e-7 (the table cast to float32 and interpolated)."""
    path = DiscreteVPPath(1000, schedule)
    n = torch.arange(1, 1001)
    log_abar = path.log_alpha_bar()[1:]
    exact_alpha, exact_sigma = torch.exp(0.5 * log_abar), torch.sqrt(-torch.expm1(log_abar))
    t32 = n.float() / 1000
    for got, exact in ((path.alpha(t32), exact_alpha), (path.sigma(t32), exact_sigma)):
        assert got.dtype == torch.float32
        assert float(((got.double() - exact).abs() / exact).max()) <= 6.0e-8
    # a float64 t on the step and the slope above it, as at exact n
    t64 = n.double() / 1000
    assert torch.equal(path.alpha(t64), exact_alpha)
    assert torch.allclose(path.d_alpha(t32).double(), path.d_alpha(t64), rtol=1e-6)


def test_off_step_times_still_interpolate():
    path = DiscreteVPPath(1000, "cosine")
    t = torch.tensor([998.5 / 1000], dtype=torch.float64)
    log_abar = path.log_alpha_bar()
    assert float(path.alpha(t)) == pytest.approx(float(torch.exp(0.25 * (log_abar[998] + log_abar[999]))), rel=1e-12)


def test_step_samplers_give_times_on_the_steps():
    g = torch.Generator().manual_seed(0)
    for sampler in (DiscreteUniformTime(1000), ImportanceSampledSteps(1000)):
        t = sampler.sample(4096, None, generator=g)
        n = torch.round(t.double() * 1000)
        assert ((t.double() * 1000 - n).abs() <= 1000 * torch.finfo(torch.float32).eps).all()
