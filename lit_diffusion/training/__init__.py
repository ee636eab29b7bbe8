"""Training: the LightningModule, EMA, learning-rate schedules, checkpoints, loggers and callbacks."""
from lit_diffusion.training.ema import EMA
from lit_diffusion.training.module import DiffusionModule
from lit_diffusion.training.schedule import LRSchedule

__all__ = ["EMA", "DiffusionModule", "LRSchedule"]
