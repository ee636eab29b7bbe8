"""On the real two-node SLURM cluster (two slurmd nodes in their own network and UTS namespaces, joined by a
bridge): a 2-rank job with one rank per node (gloo across the bridge, node ranks and the master address from
SLURM) trains the same weights as the 2-rank job on one node; a two-node job signalled with SIGUSR1
checkpoints, requeues and resumes bitwise into the same W&B run; a sweep's array tasks land on both nodes; and
a job whose nodes cannot reach each other fails within the pre-flight timeout, naming the node."""
from __future__ import annotations

import re
import subprocess
import time

import pytest
import torch

from lit_diffusion.runs.wandb_offline import load_offline_runs

from slurm_helpers import configs, fit_overrides, job_log, slurm, wait_for_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
STEPS = 24
PER_RANK = 16  # 2 ranks x 16 = 32 images a step
NODES = ("litd-n1", "litd-n2")


def _submit(root, shards, *extra, job: tuple[str, ...]) -> str:
    assert slurm("submit", *configs(), "--time", "10", *job,
                 *fit_overrides(shards, root, 2 * PER_RANK * STEPS, "--data.batch_size", str(PER_RANK),
                                "--trainer.strategy", "ddp", *extra)) == 0
    return (root / "slurm/job_id").read_text().strip()


def _wait_for(root, text: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in job_log(root):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {text!r} in the job log after {timeout} s:\n{job_log(root)[-3000:]}")
        time.sleep(0.2)


def _last(root) -> dict:
    return torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)


def _max_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def two_nodes(slurm_cluster):
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()
    if sorted(set(nodes)) != list(NODES):
        pytest.skip(f"the local cluster has nodes {nodes}, not {NODES} (slurm/start-local-cluster.sh --nodes 2 "
                    "needs CAP_NET_ADMIN)")


@pytest.fixture(scope="module")
def two_node_runs(two_nodes, digits16, tmp_path_factory):
    """Three 2-rank jobs at once: on two nodes, on one node, and on two nodes preempted by SIGUSR1."""
    root = tmp_path_factory.mktemp("two-nodes")
    with pytest.MonkeyPatch.context() as env:  # W&B offline, in the environment sbatch passes on
        for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(root / "wandb-config"),
                           "WANDB_CACHE_DIR": str(root / "wandb-cache")}.items():
            env.setenv(key, value)
        wandb = ("--wandb_project", "lit-diffusion-two-nodes")
        two = _submit(root / "two", digits16, *wandb, job=("--nodes", "2", "--tasks-per-node", "1"))
        one = _submit(root / "one", digits16, job=("--nodes", "1", "--tasks-per-node", "2"))
        preempted = _submit(root / "preempted", digits16, *wandb, job=("--nodes", "2", "--tasks-per-node", "1"))
        started = time.monotonic()
        _wait_for(root / "preempted", "training started at step 0 (restart 0)")
        subprocess.run(["scancel", "--signal=USR1", preempted], check=True)  # to the srun step: both ranks
        _wait_for(root / "preempted", "(restart 1)")
        for job, name in ((two, "two"), (one, "one"), (preempted, "preempted")):
            assert wait_for_jobs(job) == "COMPLETED", job_log(root / name)[-3000:]
    print(f"three 2-rank jobs of {STEPS} steps, one preempted: {time.monotonic() - started:.0f} s")
    return root


def test_two_node_job_equals_the_two_rank_job_on_one_node(two_node_runs):
    log = job_log(two_node_runs / "two")
    assert f"pre-flight ok: 2 rank(s)" in log and "hosts ['litd-n1', 'litd-n2']" in log, log[-3000:]
    assert "pre-flight network ok: 2 rank(s) reached the master litd-n1" in log
    assert "hosts ['litd-n1']" in job_log(two_node_runs / "one") or "hosts ['litd-n2']" in job_log(two_node_runs / "one")
    a, b = _last(two_node_runs / "two"), _last(two_node_runs / "one")
    assert a["global_step"] == b["global_step"] == STEPS and a["images_seen"] == b["images_seen"] == 2 * PER_RANK * STEPS
    print(f"two nodes vs one node after {STEPS} steps: max |weight difference| {_max_difference(a['state_dict'], b['state_dict'])}")
    for key in a["state_dict"]:  # same ranks, samples, noise and reduction order: bitwise, weights and EMA
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def test_preempted_two_node_job_resumes_bitwise_into_the_same_wandb_run(two_node_runs):
    log = job_log(two_node_runs / "preempted")
    at = int(re.search(r"-> checkpoint \S+preempted.ckpt at step (\d+)", log).group(1))
    assert 0 < at < STEPS, log[-3000:]
    assert f"training started at step {at} (restart 1)" in log
    assert log.count("hosts ['litd-n1', 'litd-n2']") == 2  # both runs on both nodes
    reference, resumed = _last(two_node_runs / "two"), _last(two_node_runs / "preempted")
    assert resumed["global_step"] == STEPS
    print(f"preempted at step {at}, resumed at step {at}; max |weight difference| to the uninterrupted run: "
          f"{_max_difference(reference['state_dict'], resumed['state_dict'])}")
    for key in reference["state_dict"]:
        assert torch.equal(reference["state_dict"][key], resumed["state_dict"][key]), key
    runs = load_offline_runs(two_node_runs / "preempted")
    assert list(runs) == [resumed["wandb_run_id"]], sorted(runs)
    run = runs[resumed["wandb_run_id"]]
    assert len(run.directories) == 2  # the first job and the requeued one, one W&B run id
    assert sorted(int(s) for s in run.metric("trainer/global_step")) == list(range(STEPS))
    print(f"W&B run id before and after the requeue: {resumed['wandb_run_id']} ({len(run.directories)} offline directories)")


def test_sweep_tasks_land_on_both_nodes(two_nodes, digits16, tmp_path, offline_wandb):
    sweep_dir = tmp_path / "sweep"
    # 5 of a node's 8 CPUs each: two tasks cannot share a node
    assert slurm("sweep", *configs(), "--grid", "model.lr=1e-3,1e-4", "--name", "two-nodes", "--sweep-dir",
                 str(sweep_dir), "--time", "10", "--cpus-per-task", "5",
                 *fit_overrides(digits16, tmp_path / "unused", 64)) == 0
    manifest = (sweep_dir / "manifest.json").read_text()
    job = re.search(r'"job_id": "(\d+)"', manifest).group(1)
    assert wait_for_jobs(job) == "COMPLETED,COMPLETED", job_log(sweep_dir, "logs")
    hosts = {}
    for task in (0, 1):
        text = (sweep_dir / "logs" / f"lit-diffusion-{job}_{task}.out").read_text()
        hosts[task] = re.search(r"lit_diffusion: job \d+ \(restart 0\) on (\S+)", text).group(1)
    print(f"sweep {job}: task -> node {hosts}")
    assert sorted(hosts.values()) == list(NODES)


def test_nodes_that_cannot_reach_each_other_fail_in_the_preflight_naming_the_node(two_nodes, digits16, tmp_path):
    # litd-n2's training link down: SLURM (on the management bridge) still reaches both nodes
    subprocess.run(["ip", "-n", "litd-n2", "link", "set", "fab0", "down"], check=True)
    try:
        root = tmp_path / "cut"
        job = _submit(root, digits16, "--distributed.preflight_timeout_seconds", "15",
                      job=("--nodes", "2", "--tasks-per-node", "1"))
        assert wait_for_jobs(job, timeout=180) == "FAILED", job_log(root)[-3000:]
    finally:
        subprocess.run(["ip", "-n", "litd-n2", "link", "set", "fab0", "up"], check=True)
    show = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    fields = dict(f.split("=", 1) for f in show.split() if "=" in f)
    start, end = (time.mktime(time.strptime(fields[k], "%Y-%m-%dT%H:%M:%S")) for k in ("StartTime", "EndTime"))
    log = job_log(root)
    print(f"unreachable node: job {job} ran {end - start:.0f} s (pre-flight timeout 15 s)")
    assert end - start < 15 + 60, log  # the timeout, plus starting Python on a loaded 2-core machine
    assert "pre-flight: rank(s) 1 on litd-n2 did not reach the master litd-n1 (10.254.1.11:" in log, log[-3000:]
    assert "pre-flight: rank 1 on litd-n2 cannot reach the master litd-n1" in log
    assert "Traceback" not in log
    assert not (root / "checkpoints/last.ckpt").exists()
