"""Head-to-head comparisons on equal budgets: a suite (suite.py) is trained (train.py), scored with its metrics
(evaluation.metric_registry) on shared noise into a typed score table (score.py, results.py) and reported
(aggregate.py, report.py, plots.py, card.py); runner.run_suite does all three. toy2d.py runs the 2-D suite of
toy2d_suite.py in a plain loop."""
from lit_diffusion.compare.runner import run_suite
from lit_diffusion.compare.suite import load_suite

__all__ = ["load_suite", "run_suite"]
