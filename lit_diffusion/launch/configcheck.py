"""Parse a training configuration exactly as `lit-diffusion fit` would, in this process, before any job is
submitted: the same composition and parser as `fit` (training/config.py: the LightningModule a config names,
the Trainer defaults), so every config that `fit` accepts is accepted here, and one that does not parse is
reported with the parser's own message."""
from __future__ import annotations

import yaml

from lit_diffusion.training.config import compose_fit_config


class ConfigError(ValueError):
    pass


def resolve_config(config_files: list[str], overrides: list[str]) -> tuple[str, dict]:
    """The fully resolved `fit` configuration (YAML text and dict) of these files and `--key value` overrides."""
    try:
        config = compose_fit_config(list(config_files), list(overrides))
    except ValueError as error:
        raise ConfigError(f"the training config does not parse ({' '.join(['-c ' + str(f) for f in config_files])}"
                          f"{' ' + ' '.join(overrides) if overrides else ''}):\n{error}") from None
    return yaml.safe_dump(config, sort_keys=False), config


def loader_workers(config: dict) -> int:
    """`data.num_workers` of a resolved config (0 when the data module has no such setting)."""
    data = config.get("data") or {}
    data = data.get("init_args", data) if isinstance(data, dict) else {}
    return int(data.get("num_workers") or 0)
