"""Head-to-head comparisons on equal budgets: a suite (suite.py) is trained (train.py), scored on shared
noise (score.py) and reported (aggregate.py, report.py, plots.py); runner.run_suite does all three."""
from lit_diffusion.compare.runner import run_suite
from lit_diffusion.compare.suite import load_suite

__all__ = ["load_suite", "run_suite"]
