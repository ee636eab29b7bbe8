"""A run's lifecycle in runs/: the typed record, the one budget decision, and the one door (hash checked once,
the file loaded once, sharded folders recognised)."""
import pytest
import torch

from lit_diffusion.runs import Budget, CheckpointError, CheckpointRecord, content_hash, open_checkpoint, read_record
from lit_diffusion.runs.record import RUN_FIELDS


def _record(**fields) -> CheckpointRecord:
    base = dict(path=None, global_step=10, images_seen=640, train_seconds=99.0, model_spec=None, wandb_run_id=None,
                sample_shape=None, backbone_parameters=0)
    return CheckpointRecord(**(base | fields))


def test_budget_names_the_limit_reached():
    assert Budget(max_steps=10).reached(_record()) == "step 10 of max_steps 10"
    assert Budget(max_steps=-1, max_images=640).reached(_record()) == "640 images seen of max_images 640"
    assert Budget(max_steps=11, max_images=641, max_time_seconds=200).reached(_record()) is None
    assert Budget().reached(_record()) is None  # no limit: never reached


def test_time_budget_counts_from_98_percent_and_may_need_a_finished_fit():
    nearly = _record(train_seconds=98.0)
    assert Budget(max_time_seconds=100).reached(nearly) == "98.0 s in fit of max_time 100 s"
    assert Budget(max_time_seconds=100).reached(_record(train_seconds=97.9)) is None
    # a resume asks whether fit ended on the time limit; a checkpoint written on a signal before it has not
    resume = Budget(max_time_seconds=100, time_needs_fit_finished=True)
    assert resume.reached(nearly) is None
    assert resume.reached(_record(train_seconds=98.0, fit_finished=True)) is not None


def _write(path, **fields):
    checkpoint = {"global_step": 3, "images_seen": 96, "train_seconds": 1.5, "image_data": True,
                  "model_spec": {"latent": {"kind": "x"}}, "sample_shape": [1, 4, 4],
                  "state_dict": {"backbone.w": torch.arange(12.0).reshape(3, 4), "ema.shadow.w": torch.zeros(3, 4)}}
    checkpoint |= fields
    checkpoint[RUN_FIELDS] = {"fit_finished": True, "content_sha256": content_hash(checkpoint)}
    torch.save(checkpoint, path)
    return checkpoint


def test_the_door_reads_the_record_and_hands_out_the_verified_dict(tmp_path):
    path = tmp_path / "a.ckpt"
    _write(path)
    record = read_record(path)
    assert (record.global_step, record.images_seen, record.train_seconds) == (3, 96, 1.5)
    assert record.sample_shape == (1, 4, 4)
    assert record.image_data and record.latent == {"kind": "x"} and record.fit_finished
    assert record.backbone_parameters == 12 and record.identity == record.content_sha256
    full = open_checkpoint(path).full()
    assert torch.equal(full["state_dict"]["backbone.w"], torch.arange(12.0).reshape(3, 4))
    full["state_dict"]["backbone.w"] = None  # the caller owns its dict: the next reader gets its own
    assert open_checkpoint(path).full()["state_dict"]["backbone.w"] is not None


def test_the_door_refuses_tensors_that_fail_their_hash(tmp_path):
    path = tmp_path / "bad.ckpt"
    checkpoint = _write(path)
    checkpoint["state_dict"]["backbone.w"][0, 0] = 1e30  # the stored hash is of the old content
    torch.save(checkpoint, path)
    assert read_record(path).global_step == 3  # the record is pickled scalars: readable without the hash
    with pytest.raises(CheckpointError, match="is corrupt: its content does not match the sha256"):
        open_checkpoint(path).full()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_checkpoint(tmp_path / "missing.ckpt")


def test_a_sharded_folder_is_opened_through_the_same_door(tmp_path):
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "last.ckpt"  # what a sharded strategy (state_dict: sharded) writes in place of a file
    dcp.save({"state_dict": {"backbone.w": torch.zeros(3, 4), "ema.shadow.w": torch.zeros(3, 4)}},
             checkpoint_id=str(folder))
    with pytest.raises(CheckpointError, match="without meta.pt"):  # a bare DCP folder holds no record
        open_checkpoint(folder)
    torch.save({"global_step": 7, "images_seen": 224, "model_spec": {"m": 1}}, folder / "meta.pt")
    record = read_record(folder)
    assert (record.global_step, record.images_seen, record.model_spec) == (7, 224, {"m": 1})
    assert record.backbone_parameters == 12  # from the DCP metadata's tensor shapes
    with pytest.raises(CheckpointError, match="sharded folder"):
        open_checkpoint(folder).full()
