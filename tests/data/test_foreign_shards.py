"""Anyone's WebDataset shards (webdataset's own ShardWriter, no dataset.json) read, resume and train."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_helpers import epoch_batches
from lit_diffusion.data import DataError, ShardDataModule

wds = pytest.importorskip("webdataset")


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def write_shards(folder: Path, kind: str, n: int = 60, per_shard: int = 25, size: int = 8) -> Path:
    """n samples with webdataset.ShardWriter: jpg+cls, png+json label, or npy tensors (+cls)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with wds.ShardWriter(str(folder / "part-%04d.tar"), maxcount=per_shard, verbose=0) as sink:
        for i in range(n):
            label = i % 5
            sample = {"__key__": f"s{i:05d}"}
            pixels = rng.integers(0, 256, (size + i % 3, size, 3), dtype=np.uint8)  # mixed heights
            if kind == "jpg":
                sample.update(jpg=_encoded(pixels, "JPEG"), cls=str(label).encode())
            elif kind == "png":
                sample.update(png=_encoded(pixels[:size], "PNG"), json={"label": label, "caption": "x"})
            else:
                sample.update(npy=rng.standard_normal((4, size, size)).astype(np.float32), cls=label)
            sink.write(sample)
    return folder


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foreign")
    return {kind: write_shards(root / kind, kind) for kind in ("jpg", "png", "npy")}


def test_jpg_cls_shards_are_inferred_and_resized(foreign, caplog):
    with caplog.at_level(logging.INFO, logger="lit_diffusion.data"):
        dm = ShardDataModule(str(foreign["jpg"]), batch_size=8, num_workers=0, resolution=8)
        dm.setup()
    info = dm.info
    assert (info.num_samples, info.shape, info.num_classes, info.format) == (60, [3, 8, 8], 5, "jpg")
    assert [s.count for s in info.shards] == [25, 25, 10]
    assert any("no dataset.json: inferred" in r.getMessage() for r in caplog.records)
    batches = epoch_batches(dm)
    assert len(batches) == 7 and batches[0]["x"].shape == (8, 3, 8, 8) and batches[0]["label"].max() < 5


def test_mixed_sizes_without_resolution_name_the_option(foreign):
    with pytest.raises(DataError, match="pass resolution"):
        epoch_batches(ShardDataModule(str(foreign["jpg"]), batch_size=8, num_workers=0))


def test_png_with_json_label_field(foreign):
    dm = ShardDataModule(str(foreign["png"] / "part-{0000..0002}.tar"), batch_size=6, num_workers=0,
                         label_key="json:label", num_classes=7)
    batch = epoch_batches(dm, limit=1)[0]
    assert dm.info.num_classes == 7 and batch["x"].shape == (6, 3, 8, 8)
    assert set(batch["label"].tolist()) <= set(range(5))
    unlabelled = ShardDataModule(str(foreign["png"]), batch_size=6, num_workers=0)  # json needs its field named
    assert "label" not in epoch_batches(unlabelled, limit=1)[0]


def test_npy_tensors(foreign):
    dm = ShardDataModule(str(foreign["npy"]), batch_size=10, num_workers=0)
    batch = epoch_batches(dm, limit=1)[0]
    assert dm.info.kind == "tensor" and batch["x"].shape == (10, 4, 8, 8) and batch["x"].dtype == torch.float32


def test_inferred_stream_resumes_exactly(foreign):
    whole = epoch_batches(ShardDataModule(str(foreign["npy"]), batch_size=5, num_workers=2))
    first = ShardDataModule(str(foreign["npy"]), batch_size=5, num_workers=2)
    epoch_batches(first, limit=4)
    second = ShardDataModule(str(foreign["npy"]), batch_size=5, num_workers=2)
    second.load_state_dict(first.state_dict())
    rest = epoch_batches(second)
    assert [b["key"] for b in rest] == [b["key"] for b in whole[4:]]


def test_resume_across_a_worker_change_continues(foreign, caplog):
    first = ShardDataModule(str(foreign["npy"]), batch_size=5, num_workers=2)
    epoch_batches(first, limit=4)
    second = ShardDataModule(str(foreign["npy"]), batch_size=5, num_workers=0)
    second.load_state_dict(first.state_dict())
    with caplog.at_level(logging.INFO, logger="lit_diffusion.data"):
        rest = epoch_batches(second)
    assert len(rest) == second.steps_per_epoch - 4
    assert any("num_workers changed from 2 to 0" in r.getMessage() for r in caplog.records)


def test_mistyped_folder_is_named_not_the_parent_dataset_json(tmp_path, foreign):
    (tmp_path / "dataset.json").write_text("{}")  # a parent folder's dataset.json must not be reported
    with pytest.raises(DataError, match=r"trian: no such shard folder or file.*lit-diffusion data build") as error:
        ShardDataModule(str(tmp_path / "trian"), batch_size=4).setup()
    assert "dataset.json" not in str(error.value).split("holds")[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dataset.json and no .tar shards.*data build"):
        ShardDataModule(str(tmp_path / "empty"), batch_size=4).setup()


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="ShardDataModule: label_key: must be 'cls', 'json:FIELD' or 'none'"):
        ShardDataModule("x", label_key="txt")
    with pytest.raises(ValueError, match="ShardDataModule: image_key"):
        ShardDataModule("x", image_key="gif")


EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("kind, extra", [
    ("jpg", ["--data.resolution", "16", "--model.backbone.init_args.in_channels", "3"]),
    ("png", ["--data.resolution", "16", "--data.label_key", "json:label", "--model.backbone.init_args.in_channels", "3"]),
    ("npy", ["--model.backbone.init_args.input_size", "8", "--model.backbone.init_args.in_channels", "4"]),
])
def test_fit_trains_on_webdataset_shardwriter_shards(foreign, tmp_path, kind, extra):
    """`lit-diffusion fit` on shards without dataset.json, as webdataset's ShardWriter writes them."""
    from lit_diffusion.cli import main as cli_main

    argv = ["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"),
            "--data.train_shards", str(foreign[kind]), "--data.batch_size", "8", "--data.num_workers", "0",
            "--model.max_images", "24", "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu",
            "--preview_every_n_steps", "0", *extra]
    assert cli_main(argv) == 0
    checkpoint = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3


def test_data_info_and_verify_say_what_was_inferred(foreign, capsys):
    from lit_diffusion.cli import main as cli_main

    assert cli_main(["data", "info", str(foreign["png"]), "--label-key", "json:label"]) == 0
    out = capsys.readouterr().out
    assert "60 in 3 shard(s) (png, kind image)" in out and "inferred     no dataset.json: image member 'png'" in out
    assert "label json:label" in out and "classes      5" in out
    assert cli_main(["data", "verify", str(foreign["jpg"]), "--resolution", "8"]) == 0
    captured = capsys.readouterr()
    assert "3 shard(s), 60 samples: OK" in captured.out and "verify: 60 samples in" in captured.err
    assert cli_main(["data", "verify", str(foreign["jpg"])]) == 1  # mixed sizes: the error names the option
    assert "pass resolution" in capsys.readouterr().err


def test_imagefolder_skip_bad_names_skipped_and_ignored_files(tmp_path, caplog, capsys):
    from lit_diffusion.cli import main as cli_main
    from lit_diffusion.data.dataset_json import read_dataset_json

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "src" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "src" / cls / f"{i}.png").write_bytes(_encoded(rng.integers(0, 256, (4, 4), np.uint8), "PNG"))
    (tmp_path / "src/a/1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "src/b/notes.txt").write_text("x")
    out = tmp_path / "out"
    assert cli_main(["data", "build", "imagefolder", str(tmp_path / "src"), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "a/1.png: cannot decode image" in err and "--skip-bad" in err
    with caplog.at_level(logging.WARNING, logger="lit_diffusion.data"):
        assert cli_main(["data", "build", "imagefolder", str(tmp_path / "src"), "--out", str(out), "--no-progress",
                         "--skip-bad", "--overwrite"]) == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped" in messages and "a/1.png" in messages and "b/notes.txt" in messages
    info = read_dataset_json(out)
    assert info.num_samples == 5 and info.build["source"]["skipped_bad"] == ["a/1.png"]


def test_the_scan_is_cached_until_a_shard_changes(foreign, tmp_path, monkeypatch):
    import shutil

    from lit_diffusion.data import infer

    monkeypatch.setenv("LIT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "copy"
    shutil.copytree(foreign["npy"], folder)
    scans = []
    real = infer._scan
    monkeypatch.setattr(infer, "_scan", lambda *a: scans.append(1) or real(*a))
    first = ShardDataModule(str(folder), batch_size=5, num_workers=0)
    first.setup()
    again = ShardDataModule(str(folder), batch_size=5, num_workers=0)
    again.setup()
    assert len(scans) == 1 and again.info.fingerprint == first.info.fingerprint
    shard = sorted(folder.glob("*.tar"))[-1]
    shard.write_bytes(shard.read_bytes())  # rewritten: a new mtime
    import os
    os.utime(shard, ns=(1, 1))
    ShardDataModule(str(folder), batch_size=5, num_workers=0).setup()
    assert len(scans) == 2
