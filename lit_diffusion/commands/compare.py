"""`lit-diffusion compare -c SUITE.yaml`."""
from __future__ import annotations

from lit_diffusion.commands.parsing import config_names_a, run


@config_names_a("suite")
def compare(*, suite: str) -> int:
    """Train several objectives head-to-head on one budget, evaluate each at its samplers x NFEs on shared
    noise, and write a report (lit_diffusion.compare). Started again, it skips finished trainings.

    `-c SUITE.yaml` names the suite, as always. This command's own arguments file (what --print_config
    writes: `suite: experiments/compare/quickstart.yaml`) is accepted by `-c` too. The suite's keys, their
    types and defaults are the dataclasses of lit_diffusion/compare/suite.py (Suite and its sections budget,
    evaluation and slurm), which jsonargparse parses the suite into.

    Args:
        suite: the suite YAML, e.g. experiments/compare/quickstart.yaml (also `-c SUITE.yaml`).
    """
    from lit_diffusion.compare import load_suite, run_suite

    report = run_suite(load_suite(suite))
    print(f"report: {report}")
    return 0


def main(argv: list[str]) -> int:
    return run(compare, argv, "lit-diffusion compare")
