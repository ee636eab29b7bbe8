"""The run folder: one owner of where a training run keeps its files and of everything read back from them
(checkpoint fields, logged CSV metrics, W&B offline runs). Everyone else asks here instead of spelling paths.

Torch only at module level: no Lightning, and wandb only inside `runs.wandb_offline`.
"""
from lit_diffusion.runs.checkpoint_info import (CheckpointError, CheckpointInfo, content_hash, find_resume_checkpoint,
                                                read_checkpoint, read_checkpoint_info, readable, verify_content)
from lit_diffusion.runs.layout import RunDirectory
from lit_diffusion.runs.metrics import MetricsLog

__all__ = ["CheckpointError", "CheckpointInfo", "content_hash", "verify_content", "MetricsLog", "RunDirectory", "find_resume_checkpoint", "read_checkpoint",
           "read_checkpoint_info", "readable"]
