"""distributed/process.py: the one place that says which rank this process is, how many there are, and which
device it uses, from torch.distributed when initialised, else from torchrun's or srun's environment."""
from __future__ import annotations

import datetime
import socket
import subprocess
import sys

import pytest
import torch

from lit_diffusion.distributed import process

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_NTASKS",
                      "SLURM_LOCALID", "SLURM_NODEID")


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_lone_process_is_rank_zero_of_one(env):
    assert process.current() == process.Process(0, 1, 0, 0) and process.current().is_global_zero
    assert process.rank_world() == (0, 1) and process.process_group() is None


def test_torchrun_variables(env):
    for name, value in dict(RANK="5", WORLD_SIZE="8", LOCAL_RANK="1", NODE_RANK="2").items():
        env.setenv(name, value)
    assert process.current() == process.Process(5, 8, 1, 2) and not process.current().is_global_zero


def test_srun_variables_and_torchrun_first(env):
    for name, value in dict(SLURM_PROCID="3", SLURM_NTASKS="4", SLURM_LOCALID="1", SLURM_NODEID="1").items():
        env.setenv(name, value)
    assert process.current() == process.Process(3, 4, 1, 1)
    env.setenv("RANK", "0")
    env.setenv("WORLD_SIZE", "2")
    assert process.rank_world() == (0, 2)  # torchrun inside an srun allocation: torchrun's numbering


@pytest.mark.parametrize("name", ["RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"])
def test_any_non_zero_coordinate_is_not_global_zero(env, name):
    """What the run lock needs before the Trainer exists (Lightning's spawned ranks set only LOCAL_RANK)."""
    from lit_diffusion.training.run_lock import is_global_rank_zero_process

    env.setenv(name, "")
    assert is_global_rank_zero_process()  # an empty value counts as unset
    env.setenv(name, "1")
    assert not is_global_rank_zero_process()


def test_device_of_this_rank(env):
    assert process.device("cpu") == torch.device("cpu")
    env.setenv("LOCAL_RANK", "3")
    assert process.device("cuda") == torch.device("cuda", 3)  # this rank's GPU
    assert process.device("cuda:1") == torch.device("cuda", 1)  # an explicit index stays
    assert process.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_process_group_wins_over_the_environment(env):
    """Once initialised, torch.distributed's numbering is the answer (what the data stream must follow)."""
    env.setenv("RANK", "1")
    env.setenv("WORLD_SIZE", "4")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                                         timeout=datetime.timedelta(seconds=60))
    try:
        assert process.process_group() == (0, 1) and process.rank_world() == (0, 1)
        assert process.launched().rank == 1  # the launcher's view is still there for who asks for it
    finally:
        torch.distributed.destroy_process_group()


def test_importing_process_pulls_in_no_lightning_and_the_package_names_stay():
    lightning = "any(m.split('.')[0] in ('lightning', 'pytorch_lightning') for m in sys.modules)"
    code = (f"import sys; import lit_diffusion.distributed.process, lit_diffusion.evaluation._dist; print({lightning}); "
            f"from lit_diffusion.distributed import configure_trainer, PRESETS; print({lightning}, callable("
            "configure_trainer), 'ddp' in PRESETS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]  # the Lightning pieces load when first asked for
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        import lit_diffusion.distributed as distributed

        distributed.nothing  # noqa: B018
