"""DiffusionModule: the one LightningModule for every objective. It owns the backbone, the objective,
the optimiser and EMA, counts images seen, and logs; every piece of diffusion math stays in the
objective (DESIGN §4)."""
from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from lit_diffusion.data.latent_space import LatentSpace
from lit_diffusion.objectives.base import DiffusionObjective
from lit_diffusion.runs import open_checkpoint
from lit_diffusion.runs.file_format import expect_kind
from lit_diffusion.runs.record import DIFFUSION_MODEL, shape_differences
from lit_diffusion.training.bookkeeping import (RunBookkeeping, image_budget_reached, restore_counts,
                                                stop_at_image_budget)
from lit_diffusion.training.ema import EMA
from lit_diffusion.training.flops import training_step_probe
from lit_diffusion.training.noise_generators import rank_generator, save_noise_states, saved_noise_state
from lit_diffusion.training.schedule import LRSchedule
from lit_diffusion.distributed.throughput import Throughput

LOSS_BINS = 10  # the loss is also logged in 10 equal bins of t
# shown in progress lines: the loss, and beside it an adaptively weighted objective's unweighted error (its
# weighted loss stays near 1 by construction, so only the raw error shows progress)
PROGRESS_METRICS = ("train/loss", "train/raw_error")
HOST_READS = {"count": 0}  # host reads (device -> host syncs) made by this module; the sync-count test reads it


def read_to_host(tensor: torch.Tensor) -> list:
    """The one place the training step reads device values on the host: a sync on CUDA, so it is only called
    every `log_every_n_steps` steps and before a checkpoint, never on a steady-state step."""
    HOST_READS["count"] += 1
    return tensor.tolist()


class StepWindow:
    """Training statistics summed on the device between two log steps, so the step itself never waits for the
    device: loss, non-finite losses (and the first one's index in the window), gradient norms, and the loss
    and sample count per t bin. One packed float64 vector, read once per window by `read_to_host`."""

    LOSS, STEPS, BAD, FIRST_BAD, BAD_VALUE, GRAD, GRADS = range(7)
    BINS = 7  # bin sums at BINS..BINS+LOSS_BINS, bin counts after them

    def __init__(self):
        self.buffer: torch.Tensor | None = None
        self.first_step = 0  # global step of the window's first step
        self.extra_names: list[str] = []  # an objective's extra diagnostics (LossOutput.extras), in buffer order
        self.extras: torch.Tensor | None = None  # their sums of batch means over the window

    def _buf(self, device) -> torch.Tensor:
        if self.buffer is None or self.buffer.device != device:
            self.buffer = torch.zeros(self.BINS + 2 * LOSS_BINS, dtype=torch.float64, device=device)
        return self.buffer

    def add_loss(self, loss: torch.Tensor, per_sample: torch.Tensor, t: torch.Tensor) -> None:
        buf = self._buf(loss.device)
        bad = ~torch.isfinite(loss.detach())
        buf[self.STEPS] += 1
        # index (1-based) in the window of the first non-finite loss, 0 while all are finite
        first = bad & (buf[self.FIRST_BAD] == 0)
        buf[self.FIRST_BAD] = torch.where(first, buf[self.STEPS], buf[self.FIRST_BAD])
        buf[self.BAD_VALUE] = torch.where(first, loss.detach().to(buf.dtype), buf[self.BAD_VALUE])
        buf[self.BAD] += bad
        buf[self.LOSS] += loss.detach()
        bins = torch.clamp((t.detach() * LOSS_BINS).long(), 0, LOSS_BINS - 1)
        buf[self.BINS:self.BINS + LOSS_BINS].index_add_(0, bins, per_sample.detach().to(buf.dtype))
        buf[self.BINS + LOSS_BINS:].index_add_(0, bins, torch.ones_like(bins, dtype=buf.dtype))

    def add_extras(self, extras: dict[str, torch.Tensor]) -> None:
        """Sum each diagnostic's batch mean; the names are fixed by the first call (one objective per run)."""
        if not self.extra_names:
            self.extra_names = list(extras)
        if self.extras is None or self.extras.device != self.buffer.device:
            self.extras = torch.zeros(len(self.extra_names), dtype=torch.float64, device=self.buffer.device)
        self.extras += torch.stack([extras[name].detach().to(torch.float64).mean() for name in self.extra_names])

    def add_grad_norm(self, norm: torch.Tensor) -> None:
        if hasattr(norm, "full_tensor"):  # FSDP2: the norm of DTensor gradients is itself a DTensor
            norm = norm.full_tensor()
        buf = self._buf(norm.device)
        buf[self.GRAD] += norm.detach()
        buf[self.GRADS] += 1

    def read(self, next_first_step: int | None) -> dict | None:
        """Host values of the window (one sync), None if empty. With `next_first_step` a fresh window starts
        there; without, the window goes on (a check before a checkpoint)."""
        if self.buffer is None:
            self.first_step = self.first_step if next_first_step is None else next_first_step
            return None
        packed = self.buffer if self.extras is None else torch.cat([self.buffer, self.extras])
        v = read_to_host(packed)  # one read for the window and the extras
        v, extras = v[:len(self.buffer)], v[len(self.buffer):]
        first = self.first_step
        if next_first_step is not None:
            self.buffer.zero_()
            if self.extras is not None:
                self.extras.zero_()
            self.first_step = next_first_step
        steps = int(v[self.STEPS])
        if steps == 0:
            return None
        counts = v[self.BINS + LOSS_BINS:]
        return {"first_step": first, "steps": steps, "bad": int(v[self.BAD]),
                "first_bad": first + int(v[self.FIRST_BAD]) - 1, "bad_value": v[self.BAD_VALUE], "last_step": first + steps - 1,
                "loss": v[self.LOSS] / steps, "grad_norm": v[self.GRAD] / v[self.GRADS] if v[self.GRADS] else None,
                "bins": {b: v[self.BINS + b] / c for b, c in enumerate(counts) if c},
                "extras": {name: value / steps for name, value in zip(self.extra_names, extras)}}


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
        latent: the autoencoder and latent normalisation of latent shards (data/latent_space.py); set by
            `lit-diffusion fit` from the shards' dataset.json and kept in the checkpoint, so that sampling, previews
            and scoring decode samples to images. None: a pixel-space model.
    """

    def __init__(self, backbone: nn.Module, objective: DiffusionObjective, max_images: int = 1_000_000,
                 lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
                 schedule: LRSchedule | None = None, ema_decay: float = 0.9999, ema_sigma_rel: float | None = None,
                 conditional: bool = False, compile: bool = False, seed: int = 0, init_from: str | None = None,
                 latent: dict | None = None):
        super().__init__()
        if max_images < 1:
            raise ValueError(f"DiffusionModule: max_images must be >= 1, got {max_images}")
        if lr <= 0:
            raise ValueError(f"DiffusionModule: lr must be positive, got {lr}")
        if not isinstance(objective, DiffusionObjective):
            raise TypeError(f"DiffusionModule: objective must be a lit_diffusion objective, got {type(objective).__name__}")
        self.backbone, self.objective = backbone, objective
        # an objective's own trainable part (sCM's adaptive weighting) trains, moves and is saved with the model
        self.objective_weights = getattr(objective, "adaptive_weight", None)
        self.max_images, self.lr, self.betas, self.weight_decay = int(max_images), float(lr), tuple(betas), weight_decay
        self.schedule = schedule or LRSchedule()
        self.ema = EMA(backbone, decay=ema_decay, sigma_rel=ema_sigma_rel)
        self.conditional, self.compile_backbone, self.seed = conditional, compile, int(seed)
        self.latent = LatentSpace.from_optional(latent)  # the config and checkpoints hold the plain record
        self.images_seen = 0  # counted by RunBookkeeping
        self.train_seconds = 0.0  # wall time spent in fit, summed over resumes (equal-compute comparisons)
        self.model_spec: dict | None = None  # the config that built this module, set by the CLI
        self.sample_shape: tuple[int, ...] | None = None  # one training sample's shape, for generation
        self.image_data = False  # images in [-1, 1] (from dataset.json at fit start; saved): x0 thresholds apply
        self.noise_generator: torch.Generator | None = None
        self._pending_generator_state: torch.Tensor | None = None
        self._pending_rng_state: tuple = (None, None)  # global RNG states of a checkpoint, set at the first batch
        self.window = StepWindow()
        self.throughput: Throughput | None = None  # images/s, TFLOP/s and MFU, set up at the first step
        if init_from is not None:
            self._init_weights_from(init_from)
        self.save_hyperparameters(ignore=["backbone", "objective", "schedule"])

    def _init_weights_from(self, path: str) -> None:
        try:
            opened = open_checkpoint(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"DiffusionModule: init_from checkpoint {path} does not exist") from None
        expect_kind(opened.record, DIFFUSION_MODEL, "--model.init_from")
        state = opened.full()["state_dict"]  # hash-checked, as a resume is
        own = {k: v for k, v in state.items() if k.startswith(("backbone.", "ema.shadow."))}
        # shapes are checked first: load_state_dict would raise a RuntimeError listing every tensor
        mine = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        wrong = [d for d in shape_differences({k: tuple(v.shape) for k, v in own.items()}, mine,
                                              ("backbone.", "ema.shadow.")) if not d.endswith(" missing")]
        if wrong:
            raise ValueError(f"DiffusionModule: init_from {path} does not fit this backbone "
                             f"({len(wrong)} tensors of another shape, e.g. {wrong[:3]}); give a checkpoint "
                             f"of the same backbone configuration")
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

    def on_train_start(self) -> None:
        self.window.first_step = self.global_step  # after a resume the first window starts at the restored step
        # a resume restores the optimiser's groups as saved; settings changed on resume (said by the CLI) apply
        for group in self.optimizers().param_groups if self._has_optimizer() else []:
            group["betas"], group["weight_decay"] = self.betas, self.weight_decay

    def loss_since_last_log(self) -> float | None:
        """Mean training loss of the steps since the last logged one (None right after a log step): what a
        checkpoint written between two log steps is ranked by. One host read, at checkpoint steps only."""
        stats = self.window.read(None)
        return None if stats is None else stats["loss"]

    def configure_callbacks(self):
        return [RunBookkeeping()]

    def on_fit_start(self) -> None:
        info = getattr(getattr(self.trainer, "datamodule", None), "info", None)
        if info is not None:  # images in [-1, 1] (not latents or tensors): the only data x0 thresholds apply to
            self.image_data = info.kind == "image" and self.latent is None
        teacher = getattr(self.objective, "teacher_net", None)
        if teacher is not None:  # a distillation teacher is frozen and not a submodule: move it by hand
            teacher.to(self.device)

    def configure_optimizers(self):
        fused = self.device.type == "cuda"
        params = [*self.backbone.parameters()]
        if self.objective_weights is not None:
            params += list(self.objective_weights.parameters())
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas,
                                 weight_decay=self.weight_decay, fused=fused or None)

    def _generator(self) -> torch.Generator:
        if self.noise_generator is None or self.noise_generator.device != self.device:
            self.noise_generator = rank_generator(self.device, self.seed, self.global_rank,
                                                  self._pending_generator_state)
            self._pending_generator_state = None
        return self.noise_generator

    # -- training ------------------------------------------------------------------------------------
    def _inputs(self, batch):
        x0 = batch["x"]
        cond = batch.get("label") if self.conditional else None
        return x0, cond, batch.get("noise")

    def training_step(self, batch, batch_idx):
        x0, cond, noise = self._inputs(batch)
        self.sample_shape = tuple(x0.shape[1:])
        self.objective.set_training_step(self.global_step, progress=min(1.0, self.images_seen / self.max_images))
        out = self.objective.loss_with_diagnostics(self.backbone, x0, cond, generator=self._generator(), noise=noise)
        loss = out.loss.mean()
        # no host sync here: finiteness and the per-t-bin losses accumulate on the device and are read every
        # log_every_n_steps steps and before any checkpoint (_check_window)
        self.window.add_loss(loss, out.loss, out.t)
        if out.extras:
            self.window.add_extras(out.extras)
        return loss  # RunBookkeeping counts the batch's images next

    def on_train_batch_start(self, batch, batch_idx):
        self._restore_rng_state()
        if self.throughput is None:
            self.throughput = Throughput(self.device, self.global_step, self.images_seen)
            self.throughput.count_flops(self.backbone, lambda: training_step_probe(self, batch))
        factor = self.schedule.factor(self.images_seen, self.max_images)
        for group in self.optimizers().param_groups if self._has_optimizer() else []:
            group["lr"] = self.lr * factor

    def _has_optimizer(self) -> bool:
        return self.trainer is not None and len(self.trainer.optimizers) > 0

    def on_before_optimizer_step(self, optimizer):
        grads = [p.grad for p in self.backbone.parameters() if p.grad is not None]
        if grads:
            self.window.add_grad_norm(torch.nn.utils.get_total_norm(grads))
        # read and log here, inside the step: Lightning writes what this step logged right after it (a log in
        # on_train_batch_end would land on the next step's row), and a non-finite loss stops before the update
        every, step = self.trainer.log_every_n_steps, self.global_step + 1
        if every and (step % every == 0 or image_budget_reached(self) or self.trainer.should_stop):
            self._check_window(log=True, next_first_step=step)

    def optimizer_step(self, *args, **kwargs):
        # the EMA follows each optimiser step inside the step itself, so that a checkpoint written by
        # a callback at the end of this batch already contains it
        super().optimizer_step(*args, **kwargs)
        self.ema.update(self.backbone)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        stop_at_image_budget(self)  # after every callback's hook (training/bookkeeping.py says why)

    def on_train_end(self) -> None:
        self._check_window(log=False)  # a non-finite loss in the last, unlogged steps still fails the run

    def _check_window(self, log: bool, next_first_step: int | None = None) -> None:
        """Read the window (one host sync), raise on a non-finite loss; with `log`, log the window's means
        and start a new window at `next_first_step`."""
        stats = self.window.read(next_first_step if log else None)
        if stats is None:
            return
        if stats["bad"]:
            raise FloatingPointError(
                f"loss is {stats['bad_value']} at step {stats['first_bad']} (the first non-finite loss of steps "
                f"{stats['first_step']}..{stats['last_step']}, checked every {self.trainer.log_every_n_steps} steps "
                f"and before each checkpoint; {self.images_seen} images seen); training stopped and no checkpoint "
                "was written after it, the last good one is kept")
        if log:
            self._log_window(stats)

    def _log_window(self, stats: dict) -> None:
        optimizer = self.optimizers() if self._has_optimizer() else None
        values = {"train/loss": stats["loss"], "train/images_seen": float(self.images_seen)}
        values |= {f"train/loss_t{b / LOSS_BINS:.1f}": v for b, v in stats["bins"].items()}
        values |= {f"train/{name}": v for name, v in stats["extras"].items()}
        if stats["grad_norm"] is not None:
            values["train/grad_norm"] = stats["grad_norm"]
        if optimizer is not None:
            values["train/lr"] = optimizer.param_groups[0]["lr"]
        rates = self.throughput.window(self.global_step + 1, self.images_seen) if self.throughput else {}
        values |= {f"train/{k}": v for k, v in rates.items()}
        for name, value in values.items():
            # host tensors: Lightning re-reads progress-bar values every batch, which must not touch the device
            self.log(name, torch.tensor(value, dtype=torch.float32), prog_bar=name in PROGRESS_METRICS)

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
        self._check_window(log=False)  # never write a checkpoint after a non-finite loss (counts: RunBookkeeping)
        if self.model_spec is not None:
            checkpoint["model_spec"] = self.model_spec
        if self.sample_shape is not None:
            checkpoint["sample_shape"] = list(self.sample_shape)
        checkpoint["image_data"] = self.image_data
        save_noise_states(checkpoint, self._generator())  # rank r resumes its own draws
        checkpoint["torch_rng"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["cuda_rng"] = torch.cuda.get_rng_state_all()
        logger = self.logger
        if logger is not None and type(logger).__name__ == "WandbLogger":
            checkpoint["wandb_run_id"] = logger.experiment.id

    def on_load_checkpoint(self, checkpoint):
        restore_counts(self, checkpoint)
        # the config this module was built from wins (a resume may change lr and the like, see the CLI); a module
        # rebuilt by load_module has none and takes the checkpoint's
        self.model_spec = self.model_spec or checkpoint.get("model_spec")
        if checkpoint.get("sample_shape") is not None:
            self.sample_shape = tuple(checkpoint["sample_shape"])
        self.image_data = bool(checkpoint.get("image_data", False))  # older checkpoints: unknown, so no threshold
        self._pending_generator_state = saved_noise_state(checkpoint, self.global_rank, self.seed)
        self.noise_generator = None
        # restored at the first batch, not now: creating the data-loader iterator draws a base seed from the
        # global RNG after this, which the uninterrupted run drew before the stored state (dropout would drift)
        self._pending_rng_state = (checkpoint.get("torch_rng"), checkpoint.get("cuda_rng"))

    def _restore_rng_state(self) -> None:
        cpu, cuda = self._pending_rng_state
        self._pending_rng_state = (None, None)
        if cpu is not None:
            torch.set_rng_state(cpu)
        if cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)

    # -- sampling ------------------------------------------------------------------------------------
    @property
    def sample_classes(self) -> int:
        """Classes that generation cycles through: the backbone's for a conditional model, else 0 (unlabelled)."""
        return getattr(self.backbone, "num_classes", 0) if self.conditional else 0

    @property
    def sample_options(self) -> dict:
        """What generation passes to the objective's sampler unless told otherwise: its default x0 threshold
        (`default_x0_threshold`, e.g. DDPM eps prediction clips) where the data are images in [-1, 1]."""
        kind = getattr(self.objective, "default_x0_threshold", None)
        return {"x0_threshold": kind, "data_range": (-1.0, 1.0)} if kind and self.image_data else {}

    @torch.no_grad()
    def generate(self, noise: torch.Tensor, use_ema: bool = True, **sample_kwargs) -> torch.Tensor:
        net = self.ema.shadow if use_ema else self.backbone
        return self.objective.sample(net, noise, **sample_kwargs)

