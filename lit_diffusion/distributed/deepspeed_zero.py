"""The DeepSpeed strategy of the `deepspeed_stage_*` presets: Lightning's DeepSpeedStrategy, plus a ZeRO-3 resume
on another world size through DeepSpeed's universal checkpoint.

Why: DeepSpeed (0.19) restores a ZeRO-3 folder by copying each rank's saved partitions into the rank of the
same number: the optimiser's flat partitions and, for frozen parameters such as the EMA's shadow model
(training/ema.py), their saved fragments. On another world size the slices differ in length and the load fails
deep inside DeepSpeed ("The size of tensor a (256) must match the size of tensor b (128)", engine.py's
load_module_state_dict). DeepSpeed re-partitions only its "universal" format, so a resume on another rank count
converts the folder to it first (once, rank 0) and loads that (distributed/deepspeed_universal.py, which also
puts back the frozen parameters and buffers the universal load leaves out). Where the conversion fails, the
refusal says so in one line with the other way on: start from the folder's weights (`--model.init_from FOLDER`,
read through runs/deepspeed_folder.py)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy

log = logging.getLogger("lit_diffusion.distributed")


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
    """DeepSpeedStrategy that resumes a ZeRO-3 folder on another world size (DeepSpeed's universal checkpoint), and
    steps the model's own optimiser on offloaded state."""

    strategy_name = "lit_diffusion_deepspeed"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if kwargs.get("offload_optimizer"):
            # the model's optimiser is torch's AdamW, which DeepSpeed refuses to step on offloaded state unless
            # told (it prefers its compiled DeepSpeedCPUAdam, a build step this project does not require)
            self.config["zero_force_ds_cpu_optimizer"] = False

    def load_checkpoint(self, checkpoint_path, weights_only=None):
        saved = saved_world_size(checkpoint_path) if self.zero_stage_3 else None
        if saved is None or saved == self.world_size:
            return super().load_checkpoint(checkpoint_path, weights_only)
        from lit_diffusion.distributed.deepspeed_universal import restore_frozen_and_buffers, write_universal

        failure, universal = [None], None
        if self.is_global_zero:
            try:
                universal = write_universal(checkpoint_path)
            except Exception as error:  # DeepSpeed's converter: any failure is reported in one line below
                failure[0] = f"{type(error).__name__}: {error}"
        failure = self.broadcast(failure)
        if failure[0] is not None:
            raise ValueError(  # the user's to change: the CLI reports it in one line
                f"checkpoint {checkpoint_path} was written by DeepSpeed ZeRO-3 on {saved} rank(s) and this run has "
                f"{self.world_size}; converting it to DeepSpeed's universal checkpoint failed ({failure[0]}): resume "
                f"with {saved} rank(s), or start from its weights with --model.init_from {checkpoint_path}")
        config = self.deepspeed_engine._config  # read by the engine's load only; later saves are ordinary
        config.load_universal_checkpoint = True
        try:
            checkpoint = super().load_checkpoint(checkpoint_path, weights_only)
        finally:
            config.load_universal_checkpoint = False
        restore_frozen_and_buffers(self.deepspeed_engine.module, checkpoint_path)
        if universal is not None:  # rank 0, which converted it
            log.info("resumed a ZeRO-3 checkpoint written on %d rank(s) on %d through DeepSpeed's universal checkpoint "
                     "(%s)", saved, self.world_size, universal)
        return checkpoint
