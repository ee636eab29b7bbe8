"""Post-hoc EMA reconstruction (EDM2 sec. 3.2, App. C.2) against EMAs tracked directly on a parameter sequence,
in float64: exact where the target profile is reachable from the snapshots, a bounded least-squares
approximation where it is not."""
import pytest
import torch
from torch import nn

from lit_diffusion.training.ema import EMA
from lit_diffusion.training.posthoc_ema_math import (Profile, _gram, gamma_from_sigma_rel, profile_weights,
                                                     solve_posthoc_ema)

STORED = (0.05, 0.10)  # EDM2's two stored profiles
TARGET = 0.08


def iterates(n, dim=6, seed=0):
    """A random-walk parameter sequence theta_1..theta_n (float64), like weights under SGD."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64).cumsum(0)


def track(sigma_rels, thetas, snapshot_steps):
    """Run the project's EMA class (float64) over the iterates; the shadows at each snapshot step, per sigma_rel."""
    model = nn.Linear(thetas.shape[1], 1, bias=False).double()
    emas = {s: EMA(model, sigma_rel=s) for s in sigma_rels}
    snaps = []
    for step, theta in enumerate(thetas, 1):
        with torch.no_grad():
            model.weight.copy_(theta[None])
        for s, ema in emas.items():
            ema.update(model)
            if step in snapshot_steps:
                snaps.append((Profile(ema.gamma, step), ema.shadow.weight.detach()[0].clone()))
    return snaps


def reconstruct(snaps, sigma_rel, t):
    solution = solve_posthoc_ema([p for p, _ in snaps], Profile(gamma_from_sigma_rel(sigma_rel), t))
    return solution, sum(x * v for x, (_, v) in zip(solution.coefficients.tolist(), snaps))


def test_profile_weights_are_the_ema_class():
    """The oracle (eq. 1 of posthoc_ema_math) is what EMA.update computes: sum_k w_k theta_k."""
    thetas = iterates(40)
    for sigma_rel in (0.02, 0.05, 0.10, 0.25):
        (profile, shadow), = track([sigma_rel], thetas, {37})
        w = profile_weights(profile, 40)
        assert w[37:].abs().max() == 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(w @ thetas, shadow, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sigma_rels, every", [(STORED, 2), (STORED, 1), ((0.05,), 1)])
@pytest.mark.parametrize("at", [60, 36])
def test_reconstruction_is_exact_when_every_gap_is_at_most_the_number_of_profiles(sigma_rels, every, at):
    thetas = iterates(60)
    snaps = track(sigma_rels, thetas, set(range(every, 61, every)))
    (direct_profile, direct), = track([TARGET], thetas, {at})
    solution, rebuilt = reconstruct([s for s in snaps if s[0].t <= at], TARGET, at)
    torch.testing.assert_close(rebuilt, direct, rtol=0, atol=1e-5)
    assert (rebuilt - direct).abs().max() < 1e-9  # in fact to float64 rounding
    assert solution.relative_residual < 1e-7
    # not vacuous: the target is none of the stored profiles
    for profile, value in snaps:
        if profile.t == at:
            assert (value - direct).abs().max() > 1e-2


def test_a_stored_profile_at_a_snapshot_step_is_exact_with_sparse_snapshots():
    thetas = iterates(60)
    snaps = track(STORED, thetas, {10, 20, 30, 40, 50, 60})
    stored = [v for p, v in snaps if p.t == 60 and p.gamma == gamma_from_sigma_rel(0.10)][0]
    solution, rebuilt = reconstruct(snaps, 0.10, 60)
    torch.testing.assert_close(rebuilt, stored, rtol=0, atol=1e-9)


def test_sparse_snapshots_give_the_least_squares_approximation_within_its_bound():
    """Gaps wider than the number of profiles: the target is not reachable. The error is not 1e-5 but is bounded
    per parameter by ||residual profile|| * ||theta_1..theta_t|| (Cauchy-Schwarz), and shrinks with the gap."""
    thetas = iterates(120, seed=1)
    (direct_profile, direct), = track([TARGET], thetas, {120})
    target_w = profile_weights(direct_profile, 120)
    residuals = []
    for every in (12, 6, 3):
        snaps = track(STORED, thetas, set(range(every, 121, every)))
        solution, rebuilt = reconstruct(snaps, TARGET, 120)
        fitted_w = sum(x * profile_weights(p, 120) for x, (p, _) in zip(solution.coefficients.tolist(), snaps))
        residual = fitted_w - target_w
        assert solution.relative_residual == pytest.approx(float(residual.norm() / target_w.norm()), rel=1e-6)
        bound = residual.norm() * thetas.norm(dim=0)
        assert ((rebuilt - direct).abs() <= bound + 1e-12).all()
        assert (rebuilt - direct).abs().max() > 1e-5  # approximate, honestly
        residuals.append(solution.relative_residual)
    assert residuals[0] > residuals[1] > residuals[2] > 0


def test_gram_matrix_is_exact_and_finite_at_large_gamma_and_length():
    """The segment-wise Gram (no powers of t beyond 1) equals W W' from explicit weight vectors, including a
    sigma_rel of 0.01 (gamma ~ 100) over 3000 steps, where k^(gamma+1) alone overflows float64."""
    gammas = [gamma_from_sigma_rel(s) for s in (0.01, 0.05, 0.2)]
    profiles = [Profile(g, t) for t in (1, 7, 500, 1999, 3000) for g in gammas]
    w = torch.stack([profile_weights(p, 3000) for p in profiles])
    assert torch.isfinite(w).all()
    torch.testing.assert_close(_gram(profiles), w @ w.T, rtol=1e-10, atol=1e-14)


def test_bad_input_fails_with_a_message():
    g = gamma_from_sigma_rel(0.05)
    with pytest.raises(ValueError, match="no snapshots"):
        solve_posthoc_ema([], Profile(g, 10))
    with pytest.raises(ValueError, match="after the target"):
        solve_posthoc_ema([Profile(g, 20)], Profile(g, 10))
    with pytest.raises(ValueError, match="sigma_rel must lie in"):
        gamma_from_sigma_rel(0.3)


@pytest.mark.parametrize("every, target", [(12, 0.08), (12, 0.25), (40, 0.25), (1, 0.25)])
def test_coefficients_sum_to_one_so_a_constant_parameter_comes_back_constant(every, target):
    """EDM2 normalises the least-squares coefficients (NVlabs/edm2 training/phema.py, solve_posthoc_coefficients,
    X / sum(X)). Before, the sum was off by 4.3e-4 (every 12 steps, sigma_rel 0.08) to -4.3e-2 (every 40, 0.25),
    and a parameter held at 3.0 through training came back as 3 * sum(x)."""
    n = 400 if every == 40 else 120
    constant = torch.full((n, 3), 3.0, dtype=torch.float64)
    snaps = track(STORED, constant, set(range(every, n + 1, every)))
    solution, rebuilt = reconstruct(snaps, target, n)
    assert float(solution.coefficients.sum()) == pytest.approx(1.0, abs=1e-14)
    assert (rebuilt - 3.0).abs().max() < 1e-12


def test_normalised_reconstruction_against_the_direct_ema_of_weights_far_from_zero():
    """Real weights sit far from zero compared with their drift: iterates 10 + random walk, snapshots of the two
    stored profiles every 12 steps, target sigma_rel 0.08 and 0.25 at step 120. The normalised fit's profile
    residual is a hair above the unconstrained least squares (7.099e-3 -> 7.112e-3, 0.1296 -> 0.1366), and the
    weights' difference from the directly tracked EMA shrinks (1.22e-2 -> 5.4e-3, 0.620 -> 0.527)."""
    thetas = iterates(120, seed=1) + 10.0
    snaps = track(STORED, thetas, set(range(12, 121, 12)))
    for target, residual, worst in ((0.08, 7.112e-3, 5.4e-3), (0.25, 0.1366, 0.53)):
        (_, direct), = track([target], thetas, {120})
        solution, rebuilt = reconstruct(snaps, target, 120)
        assert solution.relative_residual == pytest.approx(residual, rel=1e-3)
        assert (rebuilt - direct).abs().max() < worst
