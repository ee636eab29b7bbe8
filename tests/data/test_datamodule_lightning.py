"""ShardDataModule as config schema (option checks) and inside a Lightning Trainer (checkpoint
mid-epoch, resume: the resumed run trains on exactly the batches the first run had not seen)."""
from __future__ import annotations

import inspect

import lightning.pytorch as pl
import pytest
import torch

from data_helpers import epoch_batches
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.errors import DataError


@pytest.mark.parametrize("kwargs,option", [
    (dict(batch_size=0), "batch_size"),
    (dict(num_workers=-1), "num_workers"),
    (dict(shuffle_buffer=-5), "shuffle_buffer"),
    (dict(on_error="ignore"), "on_error"),
    (dict(samples_per_epoch=0), "samples_per_epoch"),
    (dict(rank=0), "rank/world_size"),
    (dict(rank=2, world_size=2), "rank"),
    (dict(val_batch_size=4), "val_batch_size"),
    (dict(decoder="cv2"), "decoder"),
    (dict(transform="flip"), "transform"),
    (dict(train_shards=""), "train_shards"),
])
def test_contradictory_or_invalid_options_are_rejected_naming_the_option(kwargs, option):
    kwargs = {"train_shards": "somewhere", **kwargs}
    with pytest.raises(ValueError, match=f"ShardDataModule: {option}:"):
        ShardDataModule(**kwargs)


def test_dataset_dependent_checks(small_dir, tmp_path):
    with pytest.raises(ValueError, match="batch_size \\* world_size = 512 is more than the 480 samples"):
        ShardDataModule(str(small_dir), batch_size=256, rank=0, world_size=2).setup()
    with pytest.raises(DataError, match="dataset.json not found"):
        ShardDataModule(str(tmp_path / "x" / "shard-{0..3}.tar")).setup()
    import numpy as np

    from data_helpers import build
    from lit_diffusion.data.sources import pairs_source

    np.save(tmp_path / "n.npy", np.zeros((8, 3), np.float32))
    np.save(tmp_path / "t.npy", np.ones((8, 3), np.float32))
    build(pairs_source(tmp_path / "n.npy", tmp_path / "t.npy"), tmp_path / "pairs")
    with pytest.raises(ValueError, match="hflip: needs \\[C, H, W\\]"):
        ShardDataModule(str(tmp_path / "pairs"), batch_size=2, hflip=True).setup()
    with pytest.raises(ValueError, match="labels: True but dataset.json has no classes"):
        ShardDataModule(str(tmp_path / "pairs"), batch_size=2, labels=True).setup()
    batch = epoch_batches(ShardDataModule(str(tmp_path / "pairs"), batch_size=2, num_workers=0), limit=1)[0]
    assert set(batch) == {"x", "noise", "key"} and torch.equal(batch["x"], torch.ones(2, 3))


def test_constructor_is_a_typed_config_schema():
    params = inspect.signature(ShardDataModule.__init__).parameters
    for name, p in params.items():
        if name != "self":
            assert p.annotation is not inspect.Parameter.empty, name
            assert name in ShardDataModule.__doc__, f"{name} is not documented"


def test_resuming_with_another_layout_is_refused(small_dir):
    dm = ShardDataModule(str(small_dir), batch_size=8, num_workers=0)
    epoch_batches(dm, limit=3)
    state = dm.state_dict()
    other = ShardDataModule(str(small_dir), batch_size=16, num_workers=0)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size: saved 8, now 16"):
        epoch_batches(other)


class Recorder(pl.LightningModule):
    """Records the keys of every training batch; learns nothing."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[list[str]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(list(batch["key"]))
        return (self.weight * batch["x"].mean()) ** 2

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def trainer(tmp_path, **kw):
    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0, **kw)


@pytest.mark.slow
def test_trainer_checkpoint_mid_epoch_and_resume_sees_the_remaining_batches(small_dir, digits_dir, tmp_path):
    def dm():
        return ShardDataModule(str(small_dir), val_shards=str(digits_dir), val_batch_size=600, batch_size=16,
                               num_workers=2, hflip=True, seed=4)

    full = Recorder()
    trainer(tmp_path / "full", enable_checkpointing=False).fit(full, datamodule=dm())
    assert len(full.seen) == 2 * 30

    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=40, save_top_k=-1)
    first = Recorder()
    trainer(tmp_path / "first", callbacks=[ckpt], max_steps=47).fit(first, datamodule=dm())
    assert first.seen == full.seen[:47]
    saved = torch.load(tmp_path / "ckpt" / "epoch=1-step=40.ckpt", weights_only=False)
    assert saved["ShardDataModule"]["epoch"] == 1 and saved["ShardDataModule"]["batches"] == 10

    resumed = Recorder()
    trainer(tmp_path / "resumed").fit(resumed, datamodule=dm(), ckpt_path=tmp_path / "ckpt" / "epoch=1-step=40.ckpt")
    assert resumed.seen == full.seen[40:]
