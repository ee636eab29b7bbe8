"""Multi-stage recipes whose teacher is a checkpoint: consistency distillation and progressive distillation from
any trained lit_diffusion model (the teacher's objective and EMA network come out of its checkpoint)."""
from __future__ import annotations

from lit_diffusion.objectives.consistency_distillation import ConsistencyDistillation
from lit_diffusion.objectives.progressive_distillation import ProgressiveDistillation
from lit_diffusion.training.loading import load_module


class ConsistencyDistillationFromCheckpoint(ConsistencyDistillation):
    """ConsistencyDistillation whose teacher is read from `teacher_checkpoint` (its EMA weights by default).

    Args:
        teacher_checkpoint: a checkpoint written by `lit-diffusion fit`.
        teacher_ema: use the teacher's EMA network (else its raw weights).
        other arguments: as ConsistencyDistillation.
    """

    def __init__(self, teacher_checkpoint: str, teacher_ema: bool = True, teacher_sampler: str = "heun",
                 num_scales: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 sigma_data: float = 0.5, huber_c: float | None = None, weighting: str = "uniform",
                 label_dropout: float = 0.0, null_label: int | None = None, distance: str = "squared_l2"):
        teacher = load_module(teacher_checkpoint)
        net = teacher.ema.shadow if teacher_ema else teacher.backbone
        super().__init__(teacher.objective, net, teacher_sampler=teacher_sampler, num_scales=num_scales,
                         sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, sigma_data=sigma_data, huber_c=huber_c,
                         weighting=weighting, label_dropout=label_dropout, null_label=null_label, distance=distance)
        self.teacher_checkpoint = teacher_checkpoint


class ProgressiveDistillationFromCheckpoint(ProgressiveDistillation):
    """ProgressiveDistillation whose teacher is read from `teacher_checkpoint` (its EMA weights by default): one
    round of Salimans & Ho 2022. Start the student from the same checkpoint (`--model.init_from`), and chain
    rounds by making each round's last checkpoint the next round's teacher at half the steps.

    Args:
        teacher_checkpoint: a checkpoint written by `lit-diffusion fit` (a base model, or the previous round).
        teacher_steps: the teacher's DDIM steps; the student learns teacher_steps / 2.
        teacher_ema: use the teacher's EMA network (else its raw weights).
    """

    def __init__(self, teacher_checkpoint: str, teacher_steps: int, teacher_ema: bool = True,
                 label_dropout: float = 0.0, null_label: int | None = None):
        teacher = load_module(teacher_checkpoint)
        net = teacher.ema.shadow if teacher_ema else teacher.backbone
        super().__init__(teacher.objective, net, teacher_steps, label_dropout=label_dropout, null_label=null_label)
        self.teacher_checkpoint = teacher_checkpoint
