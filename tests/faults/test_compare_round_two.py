"""Issue 30, compare's faults, each through the real CLI (`python -m lit_diffusion.cli compare -c SUITE`) on one
tiny suite (flow matching, 24 steps of 32 digits, 4 curve points, FD from 32 samples): a torn score cache
(item 5), Ctrl-C in the middle of a training and the same command again (items 6 and 13), an entry changed
after it trained (item 7), and suites that cannot be evaluated (item 10; the other keys of item 10 are checked
by load_suite alone, in tests/compare/test_suite_checks.py)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fault_helpers import EXPERIMENTS, REPO
from lit_diffusion.runs import read_record

pytestmark = pytest.mark.slow
RUN = "runs/flow_matching-seed0"


def write_suite(path: Path, out: Path, shards: Path, **changes) -> Path:
    suite = {
        "name": "faults", "out": str(out), "shards": str(shards), "base_config": str(EXPERIMENTS / "digits/dit.yaml"),
        "overrides": ["--data.num_workers", "0", "--data.batch_size", "32", "--trainer.accelerator", "cpu",
                      "--trainer.log_every_n_steps", "2"],
        "budget": {"max_images": 768}, "seeds": [0],  # 24 steps; numbered checkpoints every 6
        "objectives": [{"name": "flow_matching", "config": str(EXPERIMENTS / "objectives/flow_matching.yaml"),
                        "samplers": {"euler": [2]}}],
        "evaluation": {"num_samples": 32, "batch_size": 32, "curve_points": 4, "curve_samples": 16, "bootstrap": 0,
                       "metrics": ["fd"]},
    }
    for key, value in changes.items():  # "evaluation.num_samples" -> the nested key
        *parents, last = key.split(".")
        section = suite
        for parent in parents:
            section = section[parent] if not parent.isdigit() else section[int(parent)]
        section[last] = value
    path.write_text(yaml.safe_dump(suite))
    return path


def start_compare(suite: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    # Ctrl-C as at a terminal, even where this test runs with SIGINT ignored (a background job of a shell)
    return subprocess.Popen([sys.executable, "-m", "lit_diffusion.cli", "compare", "-c", str(suite)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def compare(suite: Path) -> tuple[int, str, str]:
    child = start_compare(suite)
    out, err = child.communicate(timeout=600)
    return child.returncode, out, err


def curve(out: Path) -> list[tuple[int, float]]:
    return [(p["step"], p["score"]) for p in json.loads((out / "quality_vs_compute.json").read_text())]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits_shards):
    """The suite run once, uninterrupted: (its folder, its shards)."""
    root = tmp_path_factory.mktemp("finished")
    code, out, err = compare(write_suite(root / "suite.yaml", root / "out", digits_shards))
    assert code == 0, out[-2000:] + err[-2000:]
    return root / "out", digits_shards


def copy_of(finished, tmp_path) -> tuple[Path, Path]:
    """A copy of the finished suite's folder (tests change it) and its suite file."""
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    return out, write_suite(tmp_path / "suite.yaml", out, finished[1])


def _training_processes(fit_yaml: Path) -> list[int]:
    alive = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(fit_yaml).encode() in (proc / "cmdline").read_bytes():
                if (proc / "stat").read_text().split(")")[-1].split()[0] != "Z":
                    alive.append(int(proc.name))
        except OSError:
            continue
    return alive


def test_item5_a_torn_score_cache_is_scored_again_with_a_warning_naming_it(finished, tmp_path):
    out, suite = copy_of(finished, tmp_path)
    before = json.loads((out / RUN / "eval.json").read_text())
    (out / RUN / "eval.json").write_text("")  # a disk that filled up mid-write under the old in-place rewrite
    (out / RUN / "curve.json").write_text((finished[0] / RUN / "curve.json").read_text()[:40])  # cut by a kill
    code, stdout, stderr = compare(suite)
    assert code == 0, stderr[-2000:]
    for name in ("eval.json", "curve.json"):
        warning = [line for line in stderr.splitlines() if f"{out / RUN / name} is torn" in line]
        assert len(warning) == 1 and "computed again" in warning[0], stderr[-2000:]
    assert "Expecting value" not in stderr.replace("not valid JSON (Expecting value", "") and "Traceback" not in stderr
    after = json.loads((out / RUN / "eval.json").read_text())  # rewritten whole, with the same scores as before
    assert {k: v["fd"] for k, v in after.items()} == {k: v["fd"] for k, v in before.items()}
    assert curve(out) == curve(finished[0])
    assert not list((out / RUN).glob(".*.tmp"))  # no temporary file left beside the caches


def test_items_6_13_sigterm_mid_training_then_the_same_command_reports_as_uninterrupted(finished, tmp_path):
    out = tmp_path / "out"
    suite = write_suite(tmp_path / "suite.yaml", out, finished[1])
    child = start_compare(suite)
    checkpoints = out / RUN / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*step=6.ckpt")):  # a quarter of the way: stop it there (kill, a container stop)
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert "stopped by SIGTERM" in line and str(out) in line and "run the same command to continue" in line
    stop = read_record(checkpoints / "preempted.ckpt")  # the training child saved where it stopped, and exited
    assert 6 <= stop.global_step < 24 and read_record(checkpoints / "last.ckpt").global_step == stop.global_step
    assert "signal 15 -> checkpoint" in (out / RUN / "train.log").read_text()
    assert _training_processes(out / RUN / "fit.yaml") == []
    code, stdout, stderr = compare(suite)  # the same command again: resumes and finishes
    assert code == 0, stderr[-2000:]
    assert "training (resuming)" in stdout and (checkpoints / "preempted.ckpt").is_file()  # nothing deleted
    # the same report as the uninterrupted run: the curve at the evenly spaced steps, not at the stop's
    assert [s for s, _ in curve(out)] == [s for s, _ in curve(finished[0])] == [6, 12, 18, 24]
    assert curve(out) == curve(finished[0])
    scores = lambda root: {k: v["fd"] for k, v in json.loads((root / RUN / "eval.json").read_text()).items()}  # noqa: E731
    assert scores(out) == scores(finished[0])


def test_item13_ctrl_c_while_scoring_says_one_line_and_leaves_whole_caches(finished, tmp_path):
    out, suite = copy_of(finished, tmp_path)
    for name in ("eval.json", "curve.json"):  # scored again: the stop comes in the middle of it
        (out / RUN / name).unlink()
    child = start_compare(suite)
    for line in child.stdout:
        if line.startswith("[evaluation]"):
            break
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("lit-diffusion compare: stopped by SIGINT") and "run the same command to continue" in line
    for name in ("eval.json", "curve.json"):  # what was written is whole
        assert not (out / RUN / name).is_file() or isinstance(json.loads((out / RUN / name).read_text()), dict)
    assert read_record(out / RUN / "checkpoints/last.ckpt").global_step == 24


def test_item7_an_entry_changed_after_it_trained_is_refused_naming_it_and_the_change(finished, tmp_path):
    out, _ = copy_of(finished, tmp_path)
    suite = write_suite(tmp_path / "changed.yaml", out, finished[1], overrides=[
        "--data.num_workers", "0", "--data.batch_size", "32", "--trainer.accelerator", "cpu",
        "--trainer.log_every_n_steps", "2", "--model.lr", "0.005"])
    kept = {p: p.stat().st_mtime_ns for p in (out / RUN).rglob("*") if p.is_file()}
    code, stdout, stderr = compare(suite)
    assert code == 1 and "Traceback" not in stderr
    line = stderr.strip().splitlines()[0]
    assert str(suite) in line and "'flow_matching' (seed 0)" in line and "model.lr: 0.001 -> 0.005" in line
    assert "Undo the change" in line and "new name" in line
    assert "training" not in stdout.replace("training step", "")  # nothing trained, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in (out / RUN).rglob("*") if p.is_file()} == kept


@pytest.mark.parametrize("changes, key", [
    ({"evaluation.curve_samples": 5, "evaluation.metrics": ["is", "fd"]}, "evaluation.curve_samples must be >= 10"),
    ({"objectives.0.samplers": {"euler": [2], "mean_flow": [1]}}, "objectives[0].samplers.mean_flow: objective "
                                                                  "'flow_matching' (FlowMatching) cannot use"),
])
def test_item10_a_suite_that_cannot_be_evaluated_stops_before_any_training(tmp_path, digits_shards, changes, key):
    suite = write_suite(tmp_path / "suite.yaml", tmp_path / "out", digits_shards, **changes)
    code, stdout, stderr = compare(suite)
    assert code == 1 and "Traceback" not in stderr
    line = stderr.strip().splitlines()[0]
    assert line.startswith(f"lit-diffusion compare: error: {suite}: {key}"), stderr
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained
