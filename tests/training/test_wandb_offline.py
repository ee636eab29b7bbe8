"""The offline-run reader against real files written by wandb itself (WANDB_MODE=offline, no
network, no API key): a run, its resume under the same id, and damaged copies of its log."""
import re
import shutil

import pytest

wandb = pytest.importorskip("wandb")

from lit_diffusion.runs.wandb_offline import load_offline_runs, read_records  # noqa: E402

BIG = "x" * 70_000  # > 2 blocks of 32 KiB: forces FIRST/MIDDLE/LAST fragments


def _settings():
    # console="off": no stdout wrapping inside pytest; no git/code capture: nothing to inspect.
    return wandb.Settings(silent=True, console="off", disable_git=True, save_code=False)


@pytest.fixture(scope="module")
def wandb_root(tmp_path_factory):
    """Two real offline runs for id abc123: the first, then a resume (as after a requeue)."""
    root = tmp_path_factory.mktemp("wb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_CONFIG_DIR", str(root / "config"))
        mp.setenv("WANDB_CACHE_DIR", str(root / "cache"))
        mp.setenv("WANDB_DATA_DIR", str(root / "data"))
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.delenv("WANDB_RUN_ID", raising=False)
        mp.delenv("WANDB_RESUME", raising=False)
        wandb.teardown()  # a wandb service left by an earlier test keeps that test's settings: stop it
        try:
            run = wandb.init(project="t", id="abc123", config={"lr": 0.1, "nested": {"a": 1}}, settings=_settings())
            for i in range(3):
                run.log({"loss": 1.0 / (i + 1), "d": {"x": i}})
            run.finish()

            run = wandb.init(project="t", id="abc123", resume="allow", settings=_settings())
            run.config.update({"bs": 4, "lr": 0.05}, allow_val_change=True)
            run.log({"loss": 0.2, "blob": BIG}, step=3)
            run.log({"loss": 0.1}, step=4)
            run.summary["best"] = 0.1
            run.finish()
        finally:
            wandb.teardown()  # stop the wandb-core service started under these env vars
    return root


def test_resumed_run_is_gathered_and_merged(wandb_root):
    runs = load_offline_runs(wandb_root)
    assert list(runs) == ["abc123"]
    run = runs["abc123"]
    assert run.project == "t"
    assert len(run.directories) == 2
    assert all(d.name.startswith("offline-run-") for d in run.directories)
    # Either form of the W&B dir is accepted.
    assert load_offline_runs(wandb_root / "wandb")["abc123"].history == run.history

    timing = {"_timestamp", "_runtime"}
    assert all(timing <= row.keys() for row in run.history)
    rows = [{k: v for k, v in row.items() if k not in timing} for row in run.history]
    assert rows == [
        {"_step": 0, "loss": 1.0, "d": {"x": 0}},
        {"_step": 1, "loss": 0.5, "d": {"x": 1}},
        {"_step": 2, "loss": 1.0 / 3, "d": {"x": 2}},
        {"_step": 3, "loss": 0.2, "blob": BIG},
        {"_step": 4, "loss": 0.1},
    ]
    assert run.metric("loss") == [1.0, 0.5, 1.0 / 3, 0.2, 0.1]

    assert run.config == {"lr": 0.05, "nested": {"a": 1}, "bs": 4}

    summary = {k: v for k, v in run.summary.items() if k not in timing}
    assert summary == {"_step": 4, "loss": 0.1, "d": {"x": 2}, "blob": BIG, "best": 0.1}


def test_each_directory_alone(wandb_root):
    first, second = load_offline_runs(wandb_root)["abc123"].directories
    records = read_records(first / "run-abc123.wandb")
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds[0] == "header" and kinds[1] == "run" and kinds[-1] == "exit"
    assert kinds.count("history") == 3
    assert records[1].run.run_id == "abc123"
    assert [r.WhichOneof("record_type") for r in read_records(second / "run-abc123.wandb")].count("history") == 2


def _copy_of_resumed_log(wandb_root, tmp_path):
    resumed = load_offline_runs(wandb_root)["abc123"].directories[1]  # holds multi-block records
    dst = tmp_path / "wandb" / resumed.name
    shutil.copytree(resumed, dst)
    return dst / "run-abc123.wandb"


@pytest.mark.parametrize("cut", [3, 7 + 5, 40_000, -1])
def test_truncated_log_raises_naming_the_file(wandb_root, tmp_path, cut):
    log = _copy_of_resumed_log(wandb_root, tmp_path)
    data = log.read_bytes()
    log.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=re.escape(str(log))):
        read_records(log)
    with pytest.raises(ValueError, match="run-abc123.wandb"):
        load_offline_runs(tmp_path)


def test_truncated_tail_can_be_tolerated(wandb_root, tmp_path):
    """A killed process leaves the log cut at a block boundary, possibly mid-record."""
    log = _copy_of_resumed_log(wandb_root, tmp_path)
    full = read_records(log)
    log.write_bytes(log.read_bytes()[:40_000])
    partial = read_records(log, allow_partial_tail=True)
    assert 0 < len(partial) < len(full)
    assert [r.SerializeToString() for r in partial] == [r.SerializeToString() for r in full[: len(partial)]]
    history = load_offline_runs(tmp_path, allow_partial_tail=True)["abc123"].history
    assert all(len(row.get("blob", "")) in (0, len(BIG)) for row in history)  # no half-read records


@pytest.mark.parametrize("where", ["header", "payload"])
def test_corrupted_log_raises_naming_the_file_and_offset(wandb_root, tmp_path, where):
    log = _copy_of_resumed_log(wandb_root, tmp_path)
    data = bytearray(log.read_bytes())
    pos = 0 if where == "header" else 200
    data[pos] ^= 0xFF
    log.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{re.escape(str(log))}: corrupt W&B log at byte offset \d+"):
        read_records(log)


def test_same_second_directories_are_ordered_by_numeric_suffix(wandb_root, tmp_path):
    """W&B appends -1, -2, ... to directories started within the same second."""
    first, second = load_offline_runs(wandb_root)["abc123"].directories
    names = {
        "offline-run-20260101_000000-abc123-10": second,
        "offline-run-20260101_000000-abc123-2": first,
        "offline-run-20260101_000000-abc123": first,
    }
    for name, src in names.items():
        shutil.copytree(src, tmp_path / "wandb" / name)
    (tmp_path / "wandb" / "offline-run-20260101_000000-other").mkdir()  # no log file: ignored
    run = load_offline_runs(tmp_path)["abc123"]
    assert [d.name for d in run.directories] == [
        "offline-run-20260101_000000-abc123",
        "offline-run-20260101_000000-abc123-2",
        "offline-run-20260101_000000-abc123-10",
    ]
    assert [row["_step"] for row in run.history] == [0, 1, 2, 0, 1, 2, 3, 4]
