"""lit_diffusion.distributed: which process this is (`process`: rank, world size, device, the one place that
decides), strategies (DDP, FSDP, DeepSpeed presets), the SLURM cluster environment, the pre-flight check
across ranks, and checkpoint-and-requeue on a preemption signal.

This package file imports nothing: `process` is torch-only and is imported from folders that must not reach
Lightning (data, evaluation, generation); the Lightning pieces are imported from their modules
(`lit_diffusion.distributed.configure.configure_trainer` is what the training CLI calls)."""
