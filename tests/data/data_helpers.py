"""Helpers shared by the data tests."""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import torch

from lit_diffusion.data.encode import tar_record
from lit_diffusion.data.shardio import read_shard
from lit_diffusion.data.writer import END_OF_ARCHIVE, BuildOptions, build_dataset, resolve_encode_options


def build(source, out, latent=None, **options):
    """Build shards with BuildOptions(**options) (no progress bar); returns the infos."""
    encode_keys = ("image_format", "mode", "resolution", "resize_filter", "jpeg_quality")
    enc = {k: options.pop(k) for k in encode_keys if k in options}
    opts = resolve_encode_options(source, **enc)
    return build_dataset(source, BuildOptions(out=str(out), progress=False, **options), opts, latent=latent)


def extract(tarball: Path, dest: Path) -> None:
    """Unpack a .tar.gz: with the tar program when there is one (20x faster than tarfile on
    60,000 small files), else with tarfile."""
    tar = shutil.which("tar")
    if tar:
        subprocess.run([tar, "-xzf", str(tarball), "-C", str(dest)], check=True)
    else:
        with tarfile.open(tarball) as archive:
            archive.extractall(dest, filter="data")


def rewrite_shard(path: Path, edit) -> None:
    """Rewrite a shard, passing each sample's members dict through ``edit(index, key, members)``
    (return None to drop the sample)."""
    samples = list(read_shard(str(path)))
    blobs = []
    for s in samples:
        members = edit(s.index, s.key, dict(s.members))
        if members is not None:
            blobs += [tar_record(f"{s.key}.{ext}", data) for ext, data in members.items()]
    path.write_bytes(b"".join(blobs) + END_OF_ARCHIVE)



def epoch_batches(dm, limit: int | None = None) -> list[dict]:
    """Batches of one training epoch of a ShardDataModule (the first ``limit`` of them)."""
    out = []
    for batch in dm.train_dataloader():
        out.append(batch)
        if limit is not None and len(out) == limit:
            break
    return out


def keys_of(batches) -> list[str]:
    return [k for b in batches for k in b["key"]]


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x["key"] == y["key"], f"batch {i}: keys differ"
        assert torch.equal(x["x"], y["x"]), f"batch {i}: pixels differ"
        if "label" in x:
            assert torch.equal(x["label"], y["label"])
