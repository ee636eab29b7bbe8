"""Parse a training configuration exactly as `lit-diffusion fit` would, in this process, before any job is
submitted: a config that does not parse is reported here with the parser's own message."""
from __future__ import annotations

import contextlib
import io

import yaml


class ConfigError(ValueError):
    pass


def resolve_config(config_files: list[str], overrides: list[str]) -> tuple[str, dict]:
    """The fully resolved `fit` configuration (YAML text and dict) of these files and `--key value` overrides."""
    from lit_diffusion.data.datamodule import ShardDataModule
    from lit_diffusion.training.cli import TRAINER_DEFAULTS, DiffusionCLI
    from lit_diffusion.training.module import DiffusionModule

    args = ["fit"] + [a for f in config_files for a in ("-c", str(f))] + list(overrides) + ["--print_config"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            DiffusionCLI(DiffusionModule, ShardDataModule, args=args, trainer_defaults=TRAINER_DEFAULTS)
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        except Exception as error:  # jsonargparse raises for some malformed files instead of exiting
            code, _ = 2, err.write(f"{type(error).__name__}: {error}")
    if code != 0 or not out.getvalue().strip():
        message = err.getvalue().strip() or out.getvalue().strip() or f"exit status {code}"
        raise ConfigError(f"the training config does not parse ({' '.join(['-c ' + str(f) for f in config_files])}"
                          f"{' ' + ' '.join(overrides) if overrides else ''}):\n{message}")
    text = out.getvalue()
    return text, yaml.safe_load(text)
