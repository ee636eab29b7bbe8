"""Whether a run of the suite was trained from the fit config its entry composes today. RUN/fit.yaml records the
composed config a run trained from (written before each start); an entry whose config file or overrides (or the
suite's) changed after it trained is refused before anything trains, in one line naming the entry and the keys that
changed: reporting the old model's scores under the new config would be wrong, and retraining on our own would
spend a whole training budget and orphan (or delete) the old run the user may still want. Renaming the entry
trains it anew in a fresh folder, beside the old one; undoing the change continues as before.

Not compared: what does not change the model trained (the budget, which may be raised to train a finished run
further; where its files go; what is saved or logged along the way) and keys that only one side has (an option
added or removed by a newer version of the code)."""
from __future__ import annotations

from pathlib import Path

import yaml

from lit_diffusion.compare.suite import ObjectiveEntry, Suite, SuiteError

IGNORED = {
    "model.max_images", "trainer.max_time", "trainer.max_steps",  # the budget: raising it trains further
    "trainer.default_root_dir", "trainer.accelerator", "trainer.enable_progress_bar",  # where it runs
    "trainer.logger", "wandb_project", "ckpt_path",
    "checkpoint_every_n_steps", "keep_checkpoints", "preview_every_n_steps",  # what is saved along the way (the
    "trainer.callbacks",  # spacing and the EMA snapshots follow the budget and evaluation.ema_sweep)
}
OUT = "<suite out>"  # paths under the suite's folder are compared relative to it (a moved folder is the same run)


def flat(config, out: str, prefix: str = "") -> dict[str, object]:
    """Dotted key -> leaf value of a composed config, without the IGNORED keys."""
    if isinstance(config, dict):
        items = {}
        for key, value in config.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if dotted not in IGNORED:
                items |= flat(value, out, dotted)
        return items
    if isinstance(config, str) and (config == out or config.startswith(out + "/")):
        config = OUT + config[len(out):]
    return {prefix: config}


def changed_keys(trained: dict, now: dict, trained_out: str, out: str) -> list[str]:
    """"key: old -> new" for every compared key whose value differs."""
    old, new = flat(trained, trained_out), flat(now, out)
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in old if k in new and old[k] != new[k]]


def check_unchanged(suite: Suite, entry: ObjectiveEntry, seed: int, config: dict) -> None:
    """Raise SuiteError when the run has trained (it has checkpoints) from a config other than `config`."""
    run = suite.run(entry.name, seed)
    if not run.fit_config.is_file() or not run.checkpoints.is_dir():
        return
    try:
        trained = yaml.safe_load(run.fit_config.read_text())
    except (OSError, yaml.YAMLError):
        trained = None
    if not isinstance(trained, dict):
        raise SuiteError(f"{run.fit_config} (the config {entry.name!r} seed {seed} trained from) is unreadable: "
                         f"move {run.root} away to train it anew")
    recorded_root = (trained.get("trainer") or {}).get("default_root_dir")  # SUITE_OUT/runs/NAME-seedS back then
    trained_out = str(Path(recorded_root).parent.parent) if recorded_root else str(Path(suite.out))
    changes = changed_keys(trained, config, trained_out, str(Path(suite.out)))
    if changes:
        shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
        raise SuiteError(f"{suite.source}: objectives {entry.name!r} (seed {seed}) changed since {run.root} trained "
                         f"({shown}): its scores would be the old model's. Undo the change to keep that run, or give "
                         f"the entry a new name to train it anew (the old run stays)")
