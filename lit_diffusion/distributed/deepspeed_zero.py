"""The DeepSpeed strategy of the `deepspeed_stage_*` presets: Lightning's DeepSpeedStrategy, plus a check before
a ZeRO-3 resume that the folder was written on as many ranks as resume it.

Why: DeepSpeed (0.19) restores a ZeRO-3 folder by copying each rank's saved partitions into the rank of the
same number: the optimiser's flat partitions and, for frozen parameters such as the EMA's shadow model
(training/ema.py), their saved fragments. On another world size the slices differ in length and the load fails
deep inside DeepSpeed ("The size of tensor a (256) must match the size of tensor b (128)", engine.py's
load_module_state_dict), after the processes started. DeepSpeed re-partitions only its "universal" checkpoint
format (deepspeed.checkpoint.ds_to_universal), which this project does not write. So the check says so first,
with the ways on: resume on the saved number of ranks, or start from the folder's consolidated weights
(`--model.init_from FOLDER`, read through runs/deepspeed_folder.py)."""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy



def saved_world_size(folder: str | Path) -> int | None:
    """The number of data-parallel ranks that wrote a DeepSpeed folder (any rank's module states say it; the
    folder's reading for tools is runs/deepspeed_folder.py, above this package); None for anything else."""
    folder = Path(folder)
    if not (folder / "latest").is_file():
        return None
    files = sorted((folder / (folder / "latest").read_text().strip()).glob("*model_states.pt"))
    if not files:
        return None
    return int(torch.load(files[0], map_location="cpu", weights_only=False)["dp_world_size"])


class ZeroStrategy(DeepSpeedStrategy):
    """DeepSpeedStrategy that refuses, in one line, a ZeRO-3 resume on another world size, and steps the model's
    own optimiser on offloaded state."""

    strategy_name = "lit_diffusion_deepspeed"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if kwargs.get("offload_optimizer"):
            # the model's optimiser is torch's AdamW, which DeepSpeed refuses to step on offloaded state unless
            # told (it prefers its compiled DeepSpeedCPUAdam, a build step this project does not require)
            self.config["zero_force_ds_cpu_optimizer"] = False

    def load_checkpoint(self, checkpoint_path, weights_only=None):
        saved = saved_world_size(checkpoint_path) if self.zero_stage_3 else None
        if saved is not None and saved != self.world_size:
            raise ValueError(  # the user's to change: the CLI reports it in one line
                f"checkpoint {checkpoint_path} was written by DeepSpeed ZeRO-3 on {saved} rank(s) and this run "
                f"has {self.world_size}: DeepSpeed resumes ZeRO-3 partitions only on the same number of ranks; "
                f"resume with {saved} rank(s), or start from its weights with --model.init_from {checkpoint_path}")
        return super().load_checkpoint(checkpoint_path, weights_only)
