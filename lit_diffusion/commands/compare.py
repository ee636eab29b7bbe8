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
    import sys

    from lit_diffusion.compare import load_suite, run_suite
    from lit_diffusion.stop_signals import Interrupted, stop_on_signals

    loaded = load_suite(suite)
    try:
        with stop_on_signals():  # Ctrl-C and SIGTERM: the training child saves, then one line, no traceback
            report = run_suite(loaded)
    except Interrupted as stop:
        print(f"lit-diffusion compare: {stop}; kept in {loaded.out}: finished runs, an interrupted training's "
              f"checkpoint and the scores computed so far; run the same command to continue", file=sys.stderr)
        return stop.status
    print(f"report: {report}")
    return 0


def main(argv: list[str]) -> int:
    return run(compare, argv, "lit-diffusion compare")
