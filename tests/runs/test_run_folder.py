"""The run-folder layer: the layout, checkpoint fields read without the weights, CSV metrics over restarts."""
import torch

from lit_diffusion.runs import Budget, MetricsLog, RunDirectory, find_resume_checkpoint, read_record


def test_layout_names_every_file(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.last_checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    assert run.train_log.name == "train.log" and run.eval_cache.name == "eval.json"
    assert run.train_record.name == "train.json" and run.sample_file("euler@4") == tmp_path / "samples" / "euler@4.pt"
    assert run.preview(12) == tmp_path / "previews" / "step_0000012.png"


def test_checkpoint_record_and_budget(tmp_path):
    run = RunDirectory(tmp_path)
    run.checkpoints.mkdir()
    torch.save({"global_step": 7, "images_seen": 448, "train_seconds": 3.0, "wandb_run_id": "abc",
                "sample_shape": [1, 8, 8], "model_spec": {"x": 1},
                "state_dict": {"backbone.w": torch.zeros(3, 4), "ema.w": torch.zeros(5)}}, run.last_checkpoint)
    info = read_record(run.last_checkpoint)
    assert (info.global_step, info.images_seen, info.wandb_run_id, info.sample_shape) == (7, 448, "abc", (1, 8, 8))
    assert info.backbone_parameters == 12 and info.model_spec == {"x": 1}
    def finished(max_images, max_time_seconds=0.0):  # a comparison's question: is this run trained?
        return Budget(max_images=max_images, max_time_seconds=max_time_seconds).reached(info) is not None

    assert finished(448) and not finished(449)
    assert finished(10**9, max_time_seconds=3.0) and not finished(10**9, max_time_seconds=4.0)
    assert find_resume_checkpoint(run.checkpoints) == run.last_checkpoint
    (run.checkpoints / "torn.ckpt").write_bytes(b"not a checkpoint")  # newest, unreadable: skipped
    assert find_resume_checkpoint(run.checkpoints) == run.last_checkpoint


def test_metrics_over_restarts(tmp_path):
    run = RunDirectory(tmp_path)
    for version, rows in ((2, ["64,0.5,", "128,0.4,0.9"]), (10, ["192,0.3,"])):  # version_10 is newer than 2
        path = run.csv_logs / f"version_{version}" / "metrics.csv"
        path.parent.mkdir(parents=True)
        path.write_text("train/images_seen,train/loss,val/loss\n" + "\n".join(rows) + "\n")
    log = MetricsLog(run)
    assert log.series("train/images_seen", "train/loss") == [(64.0, 0.5), (128.0, 0.4), (192.0, 0.3)]
    assert log.last("val/loss") == 0.9 and log.last("train/loss") == 0.3 and log.last("missing") is None
    assert log.latest_row()["train/images_seen"] == "192"
    assert MetricsLog(tmp_path / "nothing").latest_row() is None
