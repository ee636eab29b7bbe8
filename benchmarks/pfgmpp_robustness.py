"""PFGM++'s robustness claim (Xu et al. 2023, sec. 5.3: smaller D is more robust to large steps and to errors in
the learned field) on the 2-D head-to-head's data: one PFGM++ model per D with the toy suite's MLP, budget and
seeds (compare/toy2d.py, the plain loop), scored by the sliced Wasserstein distance to fresh data (SW, lower is
better) against the NFE of EDM's Euler and Heun, also with the network's x0 estimate perturbed by Gaussian noise
of each std in `--errors` at every evaluation (a stand-in for errors in the learned field).
Prints a markdown table (mean +- std over seeds) and the command that produced it.

With --digits OUT it instead runs the same D values as a comparison suite on the embedded digits (the quickstart's
U-Net, data and budget, `lit-diffusion compare`), scored by the Frechet distance in the digits classifier's
features with bootstrap intervals, and prints the suite's report.md.

    python benchmarks/pfgmpp_robustness.py [--dims 4 64 2048 inf] [--seeds 0 1 2] [--steps 1500]
    python benchmarks/pfgmpp_robustness.py --digits runs/pfgmpp-digits [--images 27200] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from lit_diffusion.cli import main as cli
from lit_diffusion.compare.toy2d import ToyConfig, make_net, train
from lit_diffusion.contract import Prediction
from lit_diffusion.data.toy import sample_toy
from lit_diffusion.evaluation.sliced_wasserstein import sliced_wasserstein
from lit_diffusion.objectives import PFGMPP
from lit_diffusion.samplers import run_sampler

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SETTINGS = (("euler", 2), ("euler", 4), ("euler", 8), ("heun", 5), ("heun", 9), ("heun", 35))


def score(objective: PFGMPP, net, cfg: ToyConfig, sampler: str, nfe: int, error: float, seed: int = 123) -> float:
    """SW between `eval_samples` generated (shared normal noise, the kernel's chi-square from one generator) and
    fresh data, as compare/toy2d.evaluate, optionally with a perturbed field."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(cfg.eval_samples, 2, generator=g)
    with torch.no_grad():
        predict = objective.predictor(net)
        if error > 0:
            predict = with_error(objective, predict, error, torch.Generator().manual_seed(seed + 3))
        x = run_sampler(sampler, objective.path, predict, objective.prior(objective.kernel_noise(noise, g)), nfe=nfe).x0
    data = sample_toy(cfg.dataset, cfg.eval_samples, generator=torch.Generator().manual_seed(seed + 1))
    return sliced_wasserstein(x, data, generator=torch.Generator().manual_seed(seed + 2))


def with_error(objective: PFGMPP, predict, error: float, generator: torch.Generator):
    """The predictor with N(0, error^2) added to its x0 estimate at every evaluation (eps follows: x = x0 + sigma eps)."""
    path = objective.path

    def noisy(x, t):
        pred = predict(x, t)
        sigma = float(path.sigma(torch.tensor([float(t)], dtype=torch.float64)))
        x0 = pred.x0 + error * torch.randn(pred.x0.shape, generator=generator, dtype=pred.x0.dtype)
        return Prediction(x0, (x - x0) / sigma)

    return noisy


def digits_suite(out: Path, dims: list[str], images: int, seeds: list[int]) -> Path:
    """The quickstart's data, U-Net, budget and evaluation with one PFGM++ entry per D; returns the suite file."""
    quick = yaml.safe_load((EXPERIMENTS / "compare/quickstart.yaml").read_text())
    entries = [{"name": f"pfgmpp_D{d}", "config": str(EXPERIMENTS / "objectives/pfgmpp.yaml"),
                "overrides": ["--model.objective.init_args.D", "null" if d == "inf" else d],
                "samplers": {"euler": [2, 4, 8], "heun": [5, 9, 35]}} for d in dims]
    suite = {**{k: quick[k] for k in ("build", "overrides")}, "seeds": seeds, "name": "pfgmpp_digits", "out": str(out),
             "shards": str(out / "shards"), "base_config": str(EXPERIMENTS / "digits/unet.yaml"),
             "budget": {"max_images": images}, "objectives": entries,
             "evaluation": {"num_samples": 500, "batch_size": 500, "bootstrap": 100, "curve_points": 0}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return out / "suite.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", nargs="+", default=["64", "2048", "inf"], help="D values; 'inf' is EDM")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--dataset", default="eight_gaussians")
    p.add_argument("--errors", nargs="+", type=float, default=[0.0, 0.2])
    p.add_argument("--digits", type=Path, default=None, help="run the digits suite into this folder instead")
    p.add_argument("--images", type=int, default=27_200, help="digits: training images per D")
    args = p.parse_args()
    if args.digits is not None:
        assert cli(["compare", "-c", str(digits_suite(args.digits, args.dims, args.images, args.seeds))]) == 0
        print((args.digits / "report.md").read_text())
        print("\ncommand: python benchmarks/pfgmpp_robustness.py " + " ".join(sys.argv[1:]))
        return
    rows = {}
    for d in args.dims:
        D = None if d == "inf" else int(d)
        for seed in args.seeds:
            cfg = ToyConfig(dataset=args.dataset, steps=args.steps, seed=seed, indm=False)
            objective = PFGMPP(D=D)
            start = time.perf_counter()
            net = train(objective, cfg, net=make_net(cfg).train())
            print(f"D={d} seed={seed}: trained in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            for error in args.errors:
                for sampler, nfe in SETTINGS:
                    rows.setdefault((d, error), {}).setdefault((sampler, nfe), []).append(
                        score(objective, net, cfg, sampler, nfe, error))
    header = [f"{s}@{n}" for s, n in SETTINGS]
    print(f"SW to {args.dataset} (mean +- std over seeds {args.seeds}; {args.steps} steps each; x0 error std):\n")
    print("| D | error | " + " | ".join(header) + " |")
    print("|---|---|" + "---|" * len(header))
    for (d, error), cells in rows.items():
        def fmt(v):
            return f"{statistics.mean(v):.3f} +- {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"
        print(f"| {d} | {error:g} | " + " | ".join(fmt(cells[k]) for k in SETTINGS) + " |")
    print("\ncommand: python benchmarks/pfgmpp_robustness.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
