"""`fit --ckpt_path last` opens the checkpoint it resumes from once: the resume lookup, the config checks, the
budget, the W&B id and Lightning's own load all read the one load made by the door (`runs.open_checkpoint`)."""
from pathlib import Path

import torch

from fault_helpers import fit


def test_resume_loads_the_checkpoint_once(tmp_path, digits_shards, monkeypatch):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", "3") == 0
    last = (root / "checkpoints" / "last.ckpt").resolve()
    loaded = []
    load = torch.load

    def counting_load(f, *args, **kwargs):
        loaded.append(Path(f if isinstance(f, (str, Path)) else f.name).resolve())
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    assert fit(root, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", "last") == 0
    assert loaded.count(last) == 1, loaded  # six before the door (lookup, verify, checks, budget, latent, load)
    assert torch.load(last, weights_only=False)["global_step"] == 4
    loaded.clear()  # a file named explicitly: the config checks, the budget and Lightning's load share one load;
    # LightningCLI's own hyper-parameter read is replaced by the door's (issue 30: the config given wins)
    assert fit(root, digits_shards, "--trainer.max_steps", "5", "--ckpt_path", str(last)) == 0
    assert loaded.count(last) == 1, loaded
