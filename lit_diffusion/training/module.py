"""DiffusionModule: the one LightningModule for every objective. It owns the backbone, the objective,
the optimiser and EMA, counts images seen, and logs; every piece of diffusion math stays in the
objective (DESIGN §4)."""
from __future__ import annotations

import time

import lightning.pytorch as pl
import torch
from torch import nn

from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.training.ema import EMA
from lit_diffusion.training.schedule import LRSchedule

LOSS_BINS = 10  # the loss is also logged in 10 equal bins of t


class DiffusionModule(pl.LightningModule):
    """Args:
        backbone: the network, with the contract forward(x, t, cond=None).
        objective: any lit_diffusion objective (DDPM, FlowMatching, RectifiedFlow, ConsistencyTraining, ...).
        max_images: training length in images seen across all ranks; training stops there.
        lr, betas, weight_decay: AdamW (fused on CUDA).
        schedule: learning-rate warm-up and decay, in images seen.
        ema_decay / ema_sigma_rel: classic EMA decay, or EDM2's power-function EMA when sigma_rel is set.
        conditional: feed the batch's labels to the network.
        compile: torch.compile the backbone.
        seed: seed of the noise and time draws (offset by rank); saved and restored with checkpoints.
        init_from: start from the weights (and EMA) of this checkpoint, e.g. a 2-rectified flow from its
            parent; the optimiser, step and images seen start fresh.
    """

    def __init__(self, backbone: nn.Module, objective: DiffusionObjective, max_images: int = 1_000_000,
                 lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
                 schedule: LRSchedule | None = None, ema_decay: float = 0.9999, ema_sigma_rel: float | None = None,
                 conditional: bool = False, compile: bool = False, seed: int = 0, init_from: str | None = None):
        super().__init__()
        if max_images < 1:
            raise ValueError(f"DiffusionModule: max_images must be >= 1, got {max_images}")
        if lr <= 0:
            raise ValueError(f"DiffusionModule: lr must be positive, got {lr}")
        if not isinstance(objective, DiffusionObjective):
            raise TypeError(f"DiffusionModule: objective must be a lit_diffusion objective, got {type(objective).__name__}")
        self.backbone, self.objective = backbone, objective
        self.max_images, self.lr, self.betas, self.weight_decay = int(max_images), float(lr), tuple(betas), weight_decay
        self.schedule = schedule or LRSchedule()
        self.ema = EMA(backbone, decay=ema_decay, sigma_rel=ema_sigma_rel)
        self.conditional, self.compile_backbone, self.seed = conditional, compile, int(seed)
        self.images_seen = 0
        self.train_seconds = 0.0  # wall time spent in fit, summed over resumes (equal-compute comparisons)
        self._fit_clock: tuple[float, float] | None = None  # (perf_counter at fit start, train_seconds then)
        self.model_spec: dict | None = None  # the config that built this module, set by the CLI
        self.sample_shape: tuple[int, ...] | None = None  # one training sample's shape, for generation
        self.noise_generator: torch.Generator | None = None
        self._pending_generator_state: torch.Tensor | None = None
        self._step_started = None
        if init_from is not None:
            self._init_weights_from(init_from)
        self.save_hyperparameters(ignore=["backbone", "objective", "schedule"])

    def _init_weights_from(self, path: str) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        except FileNotFoundError:
            raise FileNotFoundError(f"DiffusionModule: init_from checkpoint {path} does not exist") from None
        own = {k: v for k, v in state.items() if k.startswith(("backbone.", "ema.shadow."))}
        missing, unexpected = self.load_state_dict(own, strict=False)
        missing = [k for k in missing if k.startswith(("backbone.", "ema.shadow."))]
        if missing or unexpected:
            raise ValueError(f"DiffusionModule: init_from {path} does not fit this backbone "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")

    # -- setup ---------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.compile_backbone and not getattr(self, "_compiled", False):
            self.backbone.compile()
            self._compiled = True

    def on_fit_start(self) -> None:
        self._fit_clock = (time.perf_counter(), self.train_seconds)
        teacher = getattr(self.objective, "teacher_net", None)
        if teacher is not None:  # a distillation teacher is frozen and not a submodule: move it by hand
            teacher.to(self.device)

    def configure_optimizers(self):
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(self.backbone.parameters(), lr=self.lr, betas=self.betas,
                                 weight_decay=self.weight_decay, fused=fused or None)

    def _generator(self) -> torch.Generator:
        if self.noise_generator is None or self.noise_generator.device != self.device:
            g = torch.Generator(device=self.device)
            g.manual_seed(self.seed * 1_000_003 + self.global_rank)
            if self._pending_generator_state is not None:
                g.set_state(self._pending_generator_state)
                self._pending_generator_state = None
            self.noise_generator = g
        return self.noise_generator

    # -- training ------------------------------------------------------------------------------------
    def _inputs(self, batch):
        x0 = batch["x"]
        cond = batch.get("label") if self.conditional else None
        return x0, cond, batch.get("noise")

    def training_step(self, batch, batch_idx):
        x0, cond, noise = self._inputs(batch)
        self.sample_shape = tuple(x0.shape[1:])
        self.objective.set_training_step(self.global_step)
        out = self.objective.loss_with_diagnostics(self.backbone, x0, cond, generator=self._generator(), noise=noise)
        loss = out.loss.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step} ({self.images_seen} images seen); training "
                "stopped and no checkpoint was written for this step, the last good one is kept")
        batch_images = x0.shape[0] * self.trainer.world_size
        self.images_seen += batch_images
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/images_seen", float(self.images_seen))
        per_sample = out.loss.detach()
        bins = torch.clamp((out.t.detach() * LOSS_BINS).long(), max=LOSS_BINS - 1)
        sums = torch.zeros(LOSS_BINS, dtype=per_sample.dtype, device=per_sample.device).index_add_(0, bins, per_sample)
        for b, count in enumerate(torch.bincount(bins, minlength=LOSS_BINS).tolist()):  # one host sync for all bins
            if count:
                self.log(f"train/loss_t{b / LOSS_BINS:.1f}", sums[b] / count)
        return loss

    def on_train_batch_start(self, batch, batch_idx):
        self._step_started = time.perf_counter()
        factor = self.schedule.factor(self.images_seen, self.max_images)
        for group in self.optimizers().param_groups if self._has_optimizer() else []:
            group["lr"] = self.lr * factor

    def _has_optimizer(self) -> bool:
        return self.trainer is not None and len(self.trainer.optimizers) > 0

    def on_before_optimizer_step(self, optimizer):
        grads = [p.grad for p in self.backbone.parameters() if p.grad is not None]
        if grads:
            self.log("train/grad_norm", torch.nn.utils.get_total_norm(grads))
        self.log("train/lr", optimizer.param_groups[0]["lr"])

    def optimizer_step(self, *args, **kwargs):
        # the EMA follows each optimiser step inside the step itself, so that a checkpoint written by
        # a callback at the end of this batch already contains it
        super().optimizer_step(*args, **kwargs)
        self.ema.update(self.backbone)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._step_started is not None:
            seconds = time.perf_counter() - self._step_started
            self.log("train/images_per_second", batch["x"].shape[0] * self.trainer.world_size / max(seconds, 1e-9))
        if self.images_seen >= self.max_images:
            self.trainer.should_stop = True

    def validation_step(self, batch, batch_idx):
        x0, cond, noise = self._inputs(batch)
        g = torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)
        loss = self.objective.loss(self.ema.shadow, x0, cond, generator=g, noise=noise).mean()
        self.log("val/loss", loss, sync_dist=True, prog_bar=True)
        return loss

    def test_step(self, batch, batch_idx):
        x0, cond, noise = self._inputs(batch)
        g = torch.Generator(device=self.device).manual_seed(20_000 + batch_idx)
        loss = self.objective.loss(self.ema.shadow, x0, cond, generator=g, noise=noise).mean()
        self.log("test/loss", loss, sync_dist=True)
        return loss

    # -- checkpoints ---------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["images_seen"] = self.images_seen
        if self._fit_clock is not None:
            start, before = self._fit_clock
            self.train_seconds = before + time.perf_counter() - start
        checkpoint["train_seconds"] = self.train_seconds
        if self.model_spec is not None:
            checkpoint["model_spec"] = self.model_spec
        if self.sample_shape is not None:
            checkpoint["sample_shape"] = list(self.sample_shape)
        checkpoint["noise_generator"] = self._generator().get_state()
        checkpoint["torch_rng"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["cuda_rng"] = torch.cuda.get_rng_state_all()
        logger = self.logger
        if logger is not None and type(logger).__name__ == "WandbLogger":
            checkpoint["wandb_run_id"] = logger.experiment.id

    def on_load_checkpoint(self, checkpoint):
        self.images_seen = int(checkpoint.get("images_seen", 0))
        self.train_seconds = float(checkpoint.get("train_seconds", 0.0))
        if self._fit_clock is not None:  # resuming inside fit: the clock continues from the stored time
            self._fit_clock = (self._fit_clock[0], self.train_seconds)
        self.model_spec = checkpoint.get("model_spec", self.model_spec)
        if checkpoint.get("sample_shape") is not None:
            self.sample_shape = tuple(checkpoint["sample_shape"])
        self._pending_generator_state = checkpoint.get("noise_generator")
        self.noise_generator = None
        if "torch_rng" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng"])
        if "cuda_rng" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])

    # -- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, noise: torch.Tensor, use_ema: bool = True, **sample_kwargs) -> torch.Tensor:
        net = self.ema.shadow if use_ema else self.backbone
        return self.objective.sample(net, noise, **sample_kwargs)
