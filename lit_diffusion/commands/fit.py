"""`lit-diffusion fit|validate|test -c CONFIG.yaml [--section.key value ...]`: train a model from YAML configs, or
evaluate a checkpoint's validation or test loss.

These three are LightningCLI's subcommands: their schema is the typed signatures of the LightningModule and
ShardDataModule plus this project's options and Trainer defaults (training/config.py, which also composes a
config without running it), and training/cli.py runs them (resume, checkpoints, run lock, signals, loggers,
distributed strategies). Unlike the other commands, this one is not a typed function parsed here: LightningCLI
reads the whole command line, the subcommand word included."""
from __future__ import annotations


def main(argv: list[str]) -> int:
    """argv starts with the subcommand (fit, validate or test); returns the exit status."""
    from lit_diffusion.training.cli import main as run_lightning_cli  # Lightning is loaded only for these

    return run_lightning_cli(argv)
