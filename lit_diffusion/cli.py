"""The `lit-diffusion` command: dispatches to the command functions of `lit_diffusion.commands` (one module
per command, parsed by jsonargparse) and to LightningCLI for `fit`, `validate` and `test`."""
from __future__ import annotations

import importlib
import sys

# command -> (module, help). Each module has main(argv) -> int; imported only when its command runs,
# so that `lit-diffusion --help` and `lit-diffusion data ...` do not pay for torch and Lightning.
COMMANDS = {
    "data": ("lit_diffusion.commands.data", "build and inspect WebDataset shards"),
    "fit": ("lit_diffusion.training.cli", "train a model from a YAML config (LightningCLI)"),
    "validate": ("lit_diffusion.training.cli", "evaluate the validation loss of a checkpoint"),
    "test": ("lit_diffusion.training.cli", "evaluate the test loss of a checkpoint"),
    "sample": ("lit_diffusion.commands.sample", "generate PNGs and an .npz from a checkpoint"),
    "reflow": ("lit_diffusion.commands.reflow", "write (noise, sample) pair shards from a trained flow"),
    "compare": ("lit_diffusion.commands.compare", "train and evaluate several objectives head-to-head"),
    "toy2d": ("lit_diffusion.commands.toy2d", "train every objective on a 2-D toy distribution and compare"),
    "slurm": ("lit_diffusion.commands.slurm", "submit jobs and sweeps to SLURM"),
}
LIGHTNING_CLI = ("fit", "validate", "test")  # LightningCLI reads the command word itself


def usage() -> str:
    lines = ["usage: lit-diffusion COMMAND [ARGS...]   (lit-diffusion COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lit-diffusion: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(argv if name in LIGHTNING_CLI else rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
