"""Issue 16, fault 8: a comparison's training child dies with the comparison, and scores are tied to the
checkpoint they were computed from."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from fault_helpers import REPO
from lit_diffusion.compare.results import Setting
from lit_diffusion.compare.score import ScoreCache
from lit_diffusion.runs import RunDirectory

PARENT = """
import sys, time
from lit_diffusion.compare.train import start_child
child = start_child([sys.executable, "-c", "import time; time.sleep(120)"], None, None)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead (PID 1 here does not reap)
    except FileNotFoundError:
        return False


def test_fault8_kill_9_of_the_comparison_ends_its_training_child(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    child = int(parent.stdout.readline())
    assert _alive(child) and os.getpgid(child) == child != os.getpgid(parent.pid)  # its own process group
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the training child outlived its comparison"


def test_fault8_scores_of_another_checkpoint_are_not_reused(tmp_path):
    run = RunDirectory(tmp_path)
    setting = Setting("euler", None, 4)
    old = ScoreCache(run, 100, checkpoint="sha-of-the-500-image-model")
    old.put(setting, False, {"fd": 594.5, "nfe": 4}, torch.zeros(2, 1, 4, 4))
    assert ScoreCache(run, 100, checkpoint="sha-of-the-500-image-model").get(setting, False)["fd"] == 594.5
    retrained = ScoreCache(run, 100, checkpoint="sha-of-the-1000-image-model")  # budget.max_images raised
    assert retrained.get(setting, False) is None
    retrained.put(setting, False, {"fd": 426.0, "nfe": 4}, torch.zeros(2, 1, 4, 4))
    entries = json.loads(run.eval_cache.read_text())
    assert [v["fd"] for v in entries.values()] == [426.0]
