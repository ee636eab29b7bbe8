"""The `lit-diffusion` command: dispatches to `lit_diffusion.commands`, one module per command (typed functions
parsed by jsonargparse; `fit`, `validate` and `test` in commands/fit.py, parsed by LightningCLI).

Every command, fit included, ends a user error (a missing shard folder, a bad option value) with one line
that says what, where and what to do next, and a non-zero status, without a traceback; `--debug` (anywhere
on the line) or LIT_DIFFUSION_DEBUG=1 shows the traceback. Lightning's messages that are noise for this
project's users are filtered here, before any command module imports Lightning.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

# command -> (module, help). Each module has main(argv) -> int; imported only when its command runs,
# so that `lit-diffusion --help` and `lit-diffusion data ...` do not pay for torch and Lightning.
COMMANDS = {
    "data": ("lit_diffusion.commands.data", "build and inspect WebDataset shards"),
    "fit": ("lit_diffusion.commands.fit", "train a model from a YAML config (LightningCLI)"),
    "validate": ("lit_diffusion.commands.fit", "evaluate the validation loss of a checkpoint"),
    "test": ("lit_diffusion.commands.fit", "evaluate the test loss of a checkpoint"),
    "sample": ("lit_diffusion.commands.sample", "generate PNGs and an .npz from a checkpoint"),
    "reflow": ("lit_diffusion.commands.reflow", "write (noise, sample) pair shards from a trained flow"),
    "ema": ("lit_diffusion.commands.ema", "reconstruct an EMA of any length from post-hoc EMA snapshots"),
    "compare": ("lit_diffusion.commands.compare", "train and evaluate several objectives head-to-head"),
    "toy2d": ("lit_diffusion.commands.toy2d", "train every objective on a 2-D toy distribution and compare"),
    "slurm": ("lit_diffusion.commands.slurm", "submit jobs and sweeps to SLURM"),
    "import": ("lit_diffusion.commands.import_model", "import a published model (diffusers, DiT .pt) as a checkpoint"),
}
LIGHTNING_CLI = ("fit", "validate", "test")  # commands/fit.py: LightningCLI reads the command word itself
DEBUG_ENV = "LIT_DIFFUSION_DEBUG"

# Warnings that say nothing actionable to a user of this project (each: why it is noise here)
NOISE_WARNINGS = (
    r"LightningCLI's args parameter",  # this entry point passes argv to LightningCLI on purpose
    r"The `srun` command is available",  # a hint for interactive SLURM sessions; `slurm submit` uses srun
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # inside Lightning, with torch >= 2.10
    r"Found \d+ module\(s\) in eval mode",  # the EMA copy is in eval mode by design
    r"Total length of `[^`]*` across ranks is zero",  # no validation shards: an empty val loader by design
    r"\s*``[\w.]+`` was deprecated in v4\.",  # jsonargparse, about Lightning's own calls
    r"\s*skip_none parameter was deprecated in v4\.",
)
NOISE_LOGS = ("💡 Tip:",)  # Lightning's adverts for litlogger / litmodels
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def usage() -> str:
    lines = ["usage: lit-diffusion COMMAND [ARGS...]   (lit-diffusion COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", f"--debug (or {DEBUG_ENV}=1): show the traceback of an error"]
    return "\n".join(lines)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE_LOGS)


def quiet_noise() -> None:
    """Filter the messages in NOISE_WARNINGS and NOISE_LOGS (idempotent)."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean the user's input is wrong: reported in one line, no traceback."""
    from lit_diffusion.data.errors import BuildError, DataError

    return (DataError, BuildError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError)


def report(name: str, error: BaseException) -> int:
    """Print the one-line error; its status is 1 (2 stays the parser's, for unknown commands and options)."""
    message = str(error) or type(error).__name__
    print(f"lit-diffusion {name}: error: {message}\n(the traceback: --debug or {DEBUG_ENV}=1)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lit-diffusion: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    quiet_noise()
    before = os.environ.get(DEBUG_ENV)
    if debug:  # the commands' own error handling (commands.parsing.run) reads it too
        os.environ[DEBUG_ENV] = "1"
    try:
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(argv if name in LIGHTNING_CLI else rest) or 0)
    except user_errors() as error:
        if debug:
            raise
        return report(name, error)
    finally:
        if before is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
