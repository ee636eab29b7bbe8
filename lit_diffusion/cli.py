"""The `lit-diffusion` command: dispatches subcommands to the part of the package that owns them."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module, help). Each module has main(argv: list[str]) -> int | None.
SUBCOMMANDS = {
    "data": ("lit_diffusion.data.commands", "build and inspect WebDataset shards"),
    "fit": ("lit_diffusion.training.cli", "train a model from a YAML config (LightningCLI)"),
    "validate": ("lit_diffusion.training.cli", "evaluate the validation loss of a checkpoint"),
    "test": ("lit_diffusion.training.cli", "evaluate the test loss of a checkpoint"),
    "sample": ("lit_diffusion.training.sample_cli", "generate PNGs and an .npz from a checkpoint"),
    "reflow": ("lit_diffusion.training.reflow_cli", "write (noise, sample) pair shards from a trained flow"),
    "compare": ("lit_diffusion.compare.runner", "train and evaluate several objectives head-to-head"),
    "toy2d": ("lit_diffusion.compare.toy2d", "train every objective on a 2-D toy distribution and compare"),
    "slurm": ("lit_diffusion.launch.commands", "submit jobs and sweeps to SLURM"),
}


def usage() -> str:
    lines = ["usage: lit-diffusion SUBCOMMAND [ARGS...]", "", "subcommands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"lit-diffusion: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    if module.__name__ == "lit_diffusion.training.cli":  # LightningCLI takes the subcommand itself
        return int(module.main(argv) or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
