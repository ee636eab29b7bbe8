"""Fixtures for the launch tests: a real two-node SLURM cluster (slurm/start-local-cluster.sh --nodes 2: two
slurmd nodes in network namespaces; run once per session and shared by every test file, also across
pytest-xdist workers: the script takes a lock and leaves a running cluster of that size as it is; skipped
with a reason where that cannot work) and small real shards."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from lit_diffusion.cli import main as cli_main
from slurm_helpers import CLUSTER_NODES, REPO


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("the SLURM tests start a local cluster, which needs root (daemons, /etc/slurm)")
    have_slurm = all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not have_slurm and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install slurmctld slurmd slurm-client munge")
    # the one-node tests run on it too: one cluster for every file, so that no worker restarts another's
    def start(nodes: int):
        return subprocess.run([str(REPO / "slurm/start-local-cluster.sh"), "--nodes", str(nodes)],
                              capture_output=True, text=True, timeout=300)

    result = start(CLUSTER_NODES)
    if result.returncode != 0 and "could not create the network namespaces" in result.stderr:
        result = start(1)  # no CAP_NET_ADMIN here: the one-node tests run, the two-node ones skip (naming why)
    if result.returncode != 0:
        pytest.fail(f"slurm/start-local-cluster.sh --nodes {CLUSTER_NODES} failed:\n{result.stdout}\n{result.stderr}")
    yield "debug"
    # stop only what this session started, and not under pytest-xdist (another worker may still use it)
    if "already running" not in result.stdout and "PYTEST_XDIST_WORKER" not in os.environ:
        subprocess.run([str(REPO / "slurm/stop-local-cluster.sh")], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def digits16(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits16")
    assert cli_main(["data", "build", "digits", "--out", str(out), "--resolution", "16", "--no-progress",
                     "--workers", "0", "--overwrite"]) == 0
    return out


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, in the environment that sbatch passes on to the jobs."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))


