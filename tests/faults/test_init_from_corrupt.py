"""`--model.init_from` opens its checkpoint through the same door as a resume: a checkpoint whose tensors no
longer match their content hash (one flipped byte, which torch loads without a word) is refused with the
resume's message, exit status 2 and no traceback, through the real CLI in a child process."""
import os
import subprocess
import sys
from pathlib import Path

from fault_helpers import REPO, fit, fit_args, overwrite, tensor_record_offset


def _flip_one_byte(path: Path) -> None:
    offset, size = tensor_record_offset(path)
    middle = offset + size // 2
    byte = path.read_bytes()[middle]
    overwrite(path, middle, bytes([byte ^ 0xFF]))


def _cli(root, shards, *extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "lit_diffusion.cli", *fit_args(root, shards, *extra)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


def _refusal(output: str) -> str:
    """The error line the CLI logged, without the path (the two commands name the same file)."""
    lines = [line for line in output.splitlines() if line.startswith("ERROR") and "corrupt" in line]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_init_from_a_corrupt_checkpoint_is_refused_like_a_resume(tmp_path, digits_shards):
    parent = tmp_path / "parent"
    assert fit(parent, digits_shards, "--trainer.max_steps", "2") == 0
    corrupt = parent / "checkpoints" / "last.ckpt"
    _flip_one_byte(corrupt)

    child = _cli(tmp_path / "child", digits_shards, "--trainer.max_steps", "4", "--model.init_from", str(corrupt))
    resume = _cli(parent, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", str(corrupt))

    for run in (child, resume):
        output = run.stdout + run.stderr
        assert run.returncode == 2, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert f"checkpoint {corrupt} is corrupt: its content does not match the sha256" in output
    assert _refusal(child.stdout + child.stderr) == _refusal(resume.stdout + resume.stderr)
    assert not (tmp_path / "child" / "checkpoints").exists(), "nothing was trained from the corrupt weights"
