"""Bad input: each case raises a DataError naming shard, key and problem; with on_error="skip"
the samples are skipped, counted and logged, and every rank still takes the same steps."""
from __future__ import annotations

import logging
import re
import shutil

import numpy as np
import pytest

from data_helpers import epoch_batches, keys_of, rewrite_shard
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.encode import png_bytes, tar_record
from lit_diffusion.data.errors import DataError
from lit_diffusion.data.shardio import read_shard

SHARD = "shard-000002.tar"


def keys_in(path):
    return [r.key for r in read_shard(str(path))]


def member_offset(path, name):
    data = path.read_bytes()
    offset = data.find(name.encode() + b"\0")
    assert offset >= 0 and offset % 512 == 0
    return data, offset


def damage_header(path, index):
    key = keys_in(path)[index]
    data, offset = member_offset(path, f"{key}.png")
    data = bytearray(data)
    data[offset + 124:offset + 136] = b"garbage!!!!\0"  # size field; the checksum no longer matches
    path.write_bytes(bytes(data))


def truncate_inside(path, index):
    key = keys_in(path)[index]
    data, offset = member_offset(path, f"{key}.png")
    path.write_bytes(data[:offset + 600])


def truncate_at_boundary(path, index):
    key = keys_in(path)[index]
    data, offset = member_offset(path, f"{key}.png")
    path.write_bytes(data[:offset])


def undecodable(path, index):
    rewrite_shard(path, lambda i, k, m: m | {"png": b"\x89PNG\r\n\x1a\n not really a png"} if i == index else m)


def wrong_shape(path, index):
    small = png_bytes(np.zeros((5, 5, 3), dtype=np.uint8))
    rewrite_shard(path, lambda i, k, m: m | {"png": small} if i == index else m)


def missing_label(path, index):
    rewrite_shard(path, lambda i, k, m: {"png": m["png"]} if i == index else m)


def bad_label(path, index):
    rewrite_shard(path, lambda i, k, m: m | {"cls": b"12"} if i == index else m)


CASES = {  # name: (damage, expected message, names the key, samples lost with on_error=skip)
    "corrupt header": (damage_header, r"corrupt or truncated tar: bad header checksum", False, 60),
    "truncated in a member": (truncate_inside, r"corrupt or truncated tar: member '\d+\.png' holds", False, 60),
    "truncated at a member boundary": (truncate_at_boundary, r"stream ends without the end-of-archive", False, 60),
    "undecodable image": (undecodable, r"cannot decode png", True, 1),
    "wrong shape": (wrong_shape, r"wrong shape: image is \[3, 5, 5\], dataset.json says \[3, 4, 4\]", True, 1),
    "missing label": (missing_label, r"missing 'cls'", True, 1),
    "label out of range": (bad_label, r"label 12 out of range \[0, 10\)", True, 1),
}


def datamodule(folder, **kw):
    return ShardDataModule(str(folder), batch_size=8, num_workers=0, shuffle_buffer=20, seed=1, **kw)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_a_named_error(damaged_copy, case):
    folder, info = damaged_copy
    damage, message, names_key, _ = CASES[case]
    damaged_key = keys_in(folder / SHARD)[10]
    damage(folder / SHARD, 10)
    with pytest.raises(DataError, match=message) as err:
        epoch_batches(datamodule(folder))
    text = str(err.value)
    assert text.startswith(str(folder / SHARD) + ": "), text  # the shard URL first
    assert err.value.shard == str(folder / SHARD)
    if names_key:
        assert err.value.key == damaged_key and f"sample {damaged_key!r}" in text
    else:  # damage to the tar itself: named by the member next to it
        assert re.search(r"after member '\d+\.(png|cls)'", text), text


@pytest.mark.parametrize("case", list(CASES))
def test_on_error_skip_counts_logs_and_keeps_equal_steps(damaged_copy, case, caplog):
    folder, info = damaged_copy
    damage, message, _, lost = CASES[case]
    damage(folder / SHARD, 10)
    dm = datamodule(folder, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="lit_diffusion.data"):
        batches = epoch_batches(dm)
    assert len(batches) == dm.steps_per_epoch == 60 and all(len(b["key"]) == 8 for b in batches)
    assert dm.skipped == lost
    warnings = [r.getMessage() for r in caplog.records]
    assert any("on_error=skip: skipped" in w and re.search(message, w) for w in warnings), warnings
    assert any(f"epoch 0: on_error=skip skipped {lost} sample(s)" in w for w in warnings), warnings


def test_missing_shard_is_named_before_reading_or_skipped_and_counted(damaged_copy, caplog):
    folder, info = damaged_copy
    missing_keys = set(keys_in(folder / SHARD))
    (folder / SHARD).unlink()
    with pytest.raises(DataError, match=re.escape(f"{folder / SHARD}: shard does not exist (missing path)")):
        datamodule(folder).train_dataloader()
    for rank in (0, 1):
        dm = ShardDataModule(str(folder), batch_size=8, num_workers=2, on_error="skip", rank=rank, world_size=2)
        batches = epoch_batches(dm)
        assert len(batches) == dm.steps_per_epoch == 30
        assert not missing_keys & set(keys_of(batches))
        seen_by_rank = dm.skipped  # counted in the worker processes, summed in the main process
        if rank == 0:
            skipped_rank0 = seen_by_rank
    assert skipped_rank0 + seen_by_rank >= 70
    dm = datamodule(folder, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="lit_diffusion.data"):
        epoch_batches(dm)
    assert dm.skipped == 70
    assert any("cannot open shard" in r.getMessage() and SHARD in r.getMessage() for r in caplog.records)


def test_pipe_urls_read_like_files_and_a_failing_command_is_named(damaged_copy):
    folder, info = damaged_copy
    url = f"pipe:cat {folder}/shard-{{000000..000006}}.tar"
    a = epoch_batches(ShardDataModule(url, dataset_json=str(folder / "dataset.json"), batch_size=8, num_workers=0))
    b = epoch_batches(ShardDataModule(str(folder), batch_size=8, num_workers=0))
    assert keys_of(a) == keys_of(b)
    with pytest.raises(ValueError, match="pipe: commands; pass dataset_json="):
        ShardDataModule(url, batch_size=8).setup()
    shutil.move(folder / SHARD, folder / "elsewhere.tar")
    with pytest.raises(DataError, match=r"pipe:cat .*shard-000002.tar: command exited with status 1"):
        epoch_batches(ShardDataModule(url, dataset_json=str(folder / "dataset.json"), batch_size=8, num_workers=0))


def test_stale_dataset_json_is_an_error(damaged_copy):
    folder, info = damaged_copy
    extra = list(read_shard(str(folder / "shard-000000.tar"), 0, 1))[0]
    data = (folder / "shard-000006.tar").read_bytes()[:-1024]  # without its end-of-archive marker
    data += tar_record("99999999.png", extra.members["png"]) + tar_record("99999999.cls", b"1") + bytes(1024)
    (folder / "shard-000006.tar").write_bytes(data)
    dm = ShardDataModule(str(folder), batch_size=480, num_workers=0, shuffle_shards=False)
    with pytest.raises(DataError, match="more samples than the 60 in dataset.json"):
        epoch_batches(dm)
