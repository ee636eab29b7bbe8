"""The writer: sources -> shards + dataset.json; determinism, limits, atomicity, formats."""
from __future__ import annotations

import json
import pickle
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

from data_helpers import build
from lit_diffusion.cli import main as cli_main
from lit_diffusion.data.dataset_json import read_dataset_json
from lit_diffusion.data.decode import SampleDecoder
from lit_diffusion.data.errors import BuildError
from lit_diffusion.data.imagefolder import ImageFolderSource
from lit_diffusion.data.shardio import read_shard
from lit_diffusion.data.sources import (ArrayImageSource, Source, cifar_source, digits_source, npz_source,
                                        pairs_source)


def read_all(folder):
    """{key: decoded sample} over every shard of a dataset folder, via the reader's decoder."""
    info = read_dataset_json(folder)
    decoder = SampleDecoder(info, labels=info.labeled)
    out = {}
    for shard in info.shards:
        for raw in read_shard(str(folder / shard.name), 0, shard.count, shard.count):
            decoder.check(raw)
            out[raw.key] = decoder.decode(raw) | {"members": raw.members, "shard": shard.name}
    assert len(out) == info.num_samples
    return info, out


def test_digits_builds_fast_with_a_complete_dataset_json(tmp_path):
    start = time.perf_counter()
    build(digits_source(), tmp_path, shard_size=500)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"digits build took {elapsed:.1f} s"
    raw = json.loads((tmp_path / "dataset.json").read_text())
    for field in ("num_samples", "shape", "channels", "num_classes", "class_names", "mean", "std",
                  "fingerprint", "format", "shards", "build"):
        assert field in raw, field
    info, samples = read_all(tmp_path)
    assert (info.num_samples, info.shape, info.channels, info.format) == (1797, [1, 8, 8], 1, "png")
    assert info.class_names == [str(i) for i in range(10)]
    assert [s.count for s in info.shards] == [500, 500, 500, 297]
    from sklearn.datasets import load_digits

    digits = load_digits()
    expected = np.rint(digits.images * 255 / 16).astype(np.uint8)
    for key, s in samples.items():
        i = int(key)
        assert torch.equal(s["x"][0], torch.from_numpy(expected[i]))
        assert s["label"] == digits.target[i]
    assert info.mean[0] == pytest.approx(expected.mean() / 255, abs=1e-6)
    assert info.std[0] == pytest.approx(expected.std() / 255, abs=1e-6)
    assert info.build["source"]["source"] == "digits"


def test_same_options_give_identical_bytes_and_fingerprint_ignores_order(tmp_path):
    a = build(digits_source(), tmp_path / "a", shard_size=300)["all"]
    b = build(digits_source(), tmp_path / "b", shard_size=300, workers=2)["all"]
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards]
    for s in a.shards:
        assert (tmp_path / "a" / s.name).read_bytes() == (tmp_path / "b" / s.name).read_bytes()
    c = build(digits_source(), tmp_path / "c", shard_size=1000, shuffle=False)["all"]
    d = build(digits_source(), tmp_path / "d", shard_size=300, seed=1)["all"]
    assert a.fingerprint == c.fingerprint == d.fingerprint  # same content, other order/sharding
    assert a.shards[0].sha256 != d.shards[0].sha256
    first_keys = [r.key for r in read_shard(str(tmp_path / "c" / c.shards[0].name), 0, 5)]
    assert first_keys == [f"{i:08d}" for i in range(5)]  # no shuffle: source order
    shuffled = [r.key for r in read_shard(str(tmp_path / "a" / a.shards[0].name), 0, 5)]
    assert shuffled != first_keys


def test_shard_limits_by_count_and_by_bytes(tmp_path):
    info = build(digits_source(), tmp_path / "n", shard_size=100)["all"]
    assert [s.count for s in info.shards] == [100] * 17 + [97]
    limit = 64 * 1024
    info = build(digits_source(), tmp_path / "b", shard_size=10_000, shard_bytes=limit)["all"]
    sizes = [(tmp_path / "b" / s.name).stat().st_size for s in info.shards]
    assert all(size <= limit for size in sizes) and len(sizes) > 1
    assert [s.bytes for s in info.shards] == sizes
    assert sizes[0] > limit - 2048  # filled up to the limit (one sample is ~1.5 KiB)
    assert sum(s.count for s in info.shards) == 1797
    with pytest.raises(BuildError, match="more than shard_bytes"):
        noise = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
        build(ArrayImageSource("big", noise, None, [], {}), tmp_path / "x", shard_bytes=4096)


class FailingSource(Source):
    """Digits that fail at item ``fail_at`` (a crash in the middle of a build)."""

    def __init__(self, fail_at):
        self.inner, self.fail_at = digits_source(), fail_at
        self.class_names = self.inner.class_names

    def __len__(self):
        return len(self.inner)

    def item(self, index):
        if index == self.fail_at:
            raise BuildError(f"digits[{index}]: simulated crash")
        return self.inner.item(index)


def test_a_failed_build_leaves_no_shard_and_no_dataset_json(tmp_path):
    with pytest.raises(BuildError, match="simulated crash"):
        build(FailingSource(1500), tmp_path, shard_size=200, shuffle=False)
    assert list(tmp_path.iterdir()) == []
    # an existing dataset is never replaced silently
    build(digits_source(), tmp_path)
    with pytest.raises(BuildError, match="--overwrite"):
        build(digits_source(), tmp_path)
    build(digits_source(), tmp_path, overwrite=True, shard_size=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.json", "shard-000000.tar", "shard-000001.tar"]


def make_folder(root, sizes, mode="RGB", ext="png"):
    rng = np.random.default_rng(1)
    paths = []
    for i, (w, h) in enumerate(sizes):
        cls = root / ("a" if i % 2 == 0 else "b")
        cls.mkdir(parents=True, exist_ok=True)
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        im = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode)
        path = cls / f"{i:03d}.{ext}"
        im.save(path)
        paths.append(path)
    return paths


def test_imagefolder_copies_bytes_and_center_crops_on_resize(tmp_path):
    paths = make_folder(tmp_path / "src", [(12, 12)] * 4, ext="jpg")
    (tmp_path / "src" / "a" / "notes.txt").write_text("not an image")
    info, samples = read_all_after(build, ImageFolderSource(tmp_path / "src"), tmp_path / "copy")
    assert info.format == "jpg" and info.class_names == ["a", "b"]
    by_file = {p.read_bytes(): p for p in paths}
    for s in samples.values():
        assert s["members"]["jpg"] in by_file  # byte-identical copy
        assert s["label"] == (0 if by_file[s["members"]["jpg"]].parent.name == "a" else 1)

    make_folder(tmp_path / "rect", [(20, 10), (10, 16), (9, 9), (30, 30)])
    source = ImageFolderSource(tmp_path / "rect")
    info, samples = read_all_after(build, source, tmp_path / "r8", resolution=8, resize_filter="bicubic")
    assert info.shape == [3, 8, 8] and info.format == "png"
    for i, rel in enumerate(source.files):  # keys are indices into the source's sorted file list
        im = Image.open(tmp_path / "rect" / rel)
        w, h = im.size
        s = min(w, h)
        ref = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        ref = np.array(ref.resize((8, 8), Image.Resampling.BICUBIC) if s != 8 else ref)
        assert torch.equal(samples[f"{i:08d}"]["x"], torch.from_numpy(ref).permute(2, 0, 1))
    with pytest.raises(BuildError, match="differs from .* first sample; pass --resolution"):
        build(ImageFolderSource(tmp_path / "rect"), tmp_path / "nores")


def read_all_after(build_fn, source, out, **options):
    build_fn(source, out, **options)
    return read_all(out)


def test_image_mode_mismatch_is_an_error_unless_a_mode_is_given(tmp_path):
    for cls, mode in (("x", "RGB"), ("y", "L")):
        (tmp_path / "src" / cls).mkdir(parents=True)
        Image.new(mode, (6, 6), (100, 100, 100) if mode == "RGB" else 100).save(tmp_path / "src" / cls / "0.png")
    with pytest.raises(BuildError, match=r"y/0.png: image mode 'L' differs from the dataset mode 'RGB'.*--mode"):
        build(ImageFolderSource(tmp_path / "src"), tmp_path / "o1")
    info, samples = read_all_after(build, ImageFolderSource(tmp_path / "src"), tmp_path / "o2", mode="L")
    assert info.shape == [1, 6, 6] and info.format == "png"
    assert all(int(s["x"][0, 0, 0]) == 100 for s in samples.values())  # grey of RGB (100, 100, 100)


def test_npz_images_and_latent_tensors(tmp_path):
    rng = np.random.default_rng(2)
    nchw = rng.integers(0, 256, size=(10, 3, 5, 7), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", images=nchw, labels=np.arange(10) % 3)
    info, samples = read_all_after(build, npz_source(tmp_path / "img.npz"), tmp_path / "img")
    assert info.shape == [3, 5, 7] and info.class_names == ["0", "1", "2"]
    for key, s in samples.items():
        assert torch.equal(s["x"], torch.from_numpy(nchw[int(key)]))
        assert s["label"] == int(key) % 3
    latents = rng.normal(size=(12, 4, 2, 2)).astype(np.float32)
    np.savez(tmp_path / "lat.npz", x=latents)
    info, samples = read_all_after(build, npz_source(tmp_path / "lat.npz"), tmp_path / "lat", latent=(0.5, 0.25))
    assert (info.kind, info.format, info.latent_scale, info.latent_shift) == ("tensor", "npy", 0.5, 0.25)
    assert info.mean == pytest.approx(latents.transpose(1, 0, 2, 3).reshape(4, -1).mean(1), abs=1e-6)
    for key, s in samples.items():
        assert torch.allclose(s["x"], (torch.from_numpy(latents[int(key)]) - 0.25) * 0.5)


def test_tensor_pairs(tmp_path):
    rng = np.random.default_rng(3)
    noise, target = rng.normal(size=(2, 9, 6)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    np.save(tmp_path / "target.npy", target)
    info, samples = read_all_after(build, pairs_source(tmp_path / "noise.npy", tmp_path / "target.npy"), tmp_path / "p")
    assert (info.kind, info.shape, info.num_classes, info.members) == ("pair", [6], 0, ["noise.npy", "target.npy"])
    for key, s in samples.items():
        assert torch.equal(s["x"], torch.from_numpy(target[int(key)]))
        assert torch.equal(s["noise"], torch.from_numpy(noise[int(key)]))
    with pytest.raises(BuildError, match="noise shape"):
        np.save(tmp_path / "short.npy", noise[:3])
        pairs_source(tmp_path / "short.npy", tmp_path / "target.npy")


def fake_cifar(root, n_per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    names = [f"class{i}" for i in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names]}, f)
    data = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, size=n_per_batch))}
        data[name] = batch
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return names, data


def test_cifar_pickles_from_folder_and_tarball(tmp_path):
    names, data = fake_cifar(tmp_path / "dl")
    for i, where in enumerate((tmp_path / "dl", tmp_path / "dl" / "cifar-10-python.tar.gz")):
        out = tmp_path / f"out{i}"
        info, samples = read_all_after(build, cifar_source(where, "train"), out)
        assert (info.num_samples, info.shape, info.class_names) == (20, [3, 32, 32], names)
        images = np.concatenate([data[f"data_batch_{i}"][b"data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
        labels = sum((data[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
        for key, s in samples.items():
            assert torch.equal(s["x"], torch.from_numpy(images[int(key)]))
            assert s["label"] == labels[int(key)]
    assert cifar_source(tmp_path / "dl", "test").images.shape == (4, 32, 32, 3)


def test_validation_split_is_disjoint_and_complete(tmp_path):
    infos = build(digits_source(), tmp_path, val_fraction=0.1, shard_size=400)
    assert infos["val"].num_samples == 180 and infos["train"].num_samples == 1617
    _, train = read_all(tmp_path / "train")
    _, val = read_all(tmp_path / "val")
    assert not set(train) & set(val) and len(set(train) | set(val)) == 1797
    assert infos["val"].build["split"] == "val"


def test_webdataset_reads_our_shards_and_we_read_its_shards(tmp_path, digits_dir):
    import webdataset as wds

    info = read_dataset_json(digits_dir)
    ds = wds.WebDataset(str(digits_dir / info.shards[0].name), shardshuffle=False, empty_check=False)
    samples = list(ds)
    assert len(samples) == info.shards[0].count
    assert {"__key__", "png", "cls"} <= set(samples[0])
    ours = list(read_shard(str(digits_dir / info.shards[0].name)))
    assert [s["__key__"] for s in samples] == [r.key for r in ours]
    assert all(s["png"] == r.members["png"] for s, r in zip(samples, ours))

    with wds.TarWriter(str(tmp_path / "w.tar")) as sink:
        for r in ours[:5]:
            sink.write({"__key__": r.key, "png": r.members["png"], "cls": r.members["cls"]})
    back = list(read_shard(str(tmp_path / "w.tar")))
    assert [(b.key, b.members) for b in back] == [(r.key, r.members) for r in ours[:5]]


def test_cli_build_info_verify(tmp_path, capsys):
    out = tmp_path / "digits"
    assert cli_main(["data", "build", "digits", "--out", str(out), "--shard-size", "600", "--no-progress",
                     "--resolution", "16"]) == 0
    info = read_dataset_json(out)
    assert info.shape == [1, 16, 16] and len(info.shards) == 3
    assert info.build["command"][:4] == ["lit-diffusion", "data", "build", "digits"]
    assert cli_main(["data", "info", str(out)]) == 0
    assert "1797 in 3 shard(s)" in capsys.readouterr().out
    assert cli_main(["data", "verify", str(out)]) == 0
    assert cli_main(["data", "build", "digits", "--out", str(out), "--no-progress"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    data = bytearray((out / info.shards[1].name).read_bytes())
    data[2000:2100] = b"\xff" * 100
    (out / info.shards[1].name).write_bytes(bytes(data))
    assert cli_main(["data", "verify", str(out)]) == 1
    assert info.shards[1].name in capsys.readouterr().err
