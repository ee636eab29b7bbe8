"""Quality vs compute: which checkpoints along a run are scored, and the compute each point stands for."""
import torch

from lit_diffusion.compare.curve import curve_checkpoints, default_setting
from lit_diffusion.compare.suite import ObjectiveEntry


def _checkpoint(path, step, batch=64, seconds_per_step=0.5):
    torch.save({"global_step": step, "images_seen": step * batch, "train_seconds": step * seconds_per_step,
                "state_dict": {}}, path)


def test_curve_takes_evenly_spaced_checkpoints_ending_at_the_last(tmp_path):
    for step in (40, 80, 120, 160, 200):
        _checkpoint(tmp_path / f"epoch=0-step={step}.ckpt", step)
    _checkpoint(tmp_path / "last.ckpt", 200)  # the same step as the newest numbered one: counted once
    picked = curve_checkpoints(tmp_path, 3)
    assert [i.global_step for i in picked] == [40, 120, 200]
    assert [(i.images_seen, i.train_seconds) for i in picked] == [(2560, 20.0), (7680, 60.0), (12800, 100.0)]
    assert [i.global_step for i in curve_checkpoints(tmp_path, 10)] == [40, 80, 120, 160, 200]
    assert [i.global_step for i in curve_checkpoints(tmp_path, 1)] == [200]
    assert curve_checkpoints(tmp_path, 0) == [] and curve_checkpoints(tmp_path / "none", 3) == []


def test_default_setting_is_the_first_sampler_at_its_largest_nfe():
    entry = ObjectiveEntry("fm", "fm.yaml", {"euler": [1, 8, 2], "heun:uniform": [9]})
    assert default_setting(entry).label == "euler@8"
