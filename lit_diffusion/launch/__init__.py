"""lit_diffusion.launch: SLURM submission (`lit-diffusion slurm submit`), job-array sweeps with a manifest
(`slurm sweep`, `slurm status`); the sbatch template and a local one-node cluster live in `slurm/`.
Requeue on preemption is done inside training (lit_diffusion.distributed.preemption)."""
