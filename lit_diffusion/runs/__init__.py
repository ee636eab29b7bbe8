"""The run folder and a run's lifecycle: one owner of where a training run keeps its files, of the typed
checkpoint record, of the budget and when it is reached, of the one door every checkpoint is opened through
(single files and sharded folders), and of what is read back (logged CSV metrics, W&B offline runs). Everyone
else asks here instead of spelling paths or checkpoint keys.

Torch only at module level: no Lightning, and wandb only inside `runs.wandb_offline`.
"""
from lit_diffusion.runs.budget import Budget
from lit_diffusion.runs.checkpoint_file import OpenCheckpoint, is_sharded, open_checkpoint, read_record
from lit_diffusion.runs.content_hash import CheckpointError, content_hash
from lit_diffusion.runs.layout import RunDirectory
from lit_diffusion.runs.metrics import MetricsLog
from lit_diffusion.runs.record import CheckpointRecord
from lit_diffusion.runs.resume import find_resume_checkpoint, readable

__all__ = ["Budget", "CheckpointError", "CheckpointRecord", "MetricsLog", "OpenCheckpoint", "RunDirectory",
           "content_hash", "find_resume_checkpoint", "is_sharded", "open_checkpoint", "read_record", "readable"]
