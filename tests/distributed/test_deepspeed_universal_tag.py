"""The universal copy of a ZeRO-3 folder belongs to the tag it was converted from: a folder saved again under a
new tag is converted again, never resumed from the older copy (distributed/deepspeed_universal.py)."""
from __future__ import annotations

import pytest

from lit_diffusion.distributed.deepspeed_universal import LATEST_UNIVERSAL, write_universal


def _folder(tmp_path, latest: str, converted: str):
    folder = tmp_path / "last.ckpt"
    (folder / latest).mkdir(parents=True)
    (folder / "latest").write_text(latest)
    (folder / f"universal_{converted}").mkdir()
    (folder / LATEST_UNIVERSAL).write_text(f"universal_{converted}")
    return folder


def test_the_copy_of_the_latest_tag_is_reused(tmp_path):
    folder = _folder(tmp_path, "global_step2", converted="global_step2")
    assert write_universal(folder) == folder / "universal_global_step2"  # no conversion: DeepSpeed not called


def test_a_copy_of_an_older_tag_is_not_resumed_from(tmp_path):
    pytest.importorskip("deepspeed")
    folder = _folder(tmp_path, "global_step4", converted="global_step2")
    # global_step4 holds no partitions here, so the conversion it starts fails: it was attempted, not skipped
    with pytest.raises(Exception):
        write_universal(folder)
    assert (folder / LATEST_UNIVERSAL).read_text() == "universal_global_step2"  # the marker moves only on success
