"""What a checkpoint says about itself, as one typed record: read without the weights (the fields are pickled
scalars beside the tensors), so that resume, comparisons and tools never spell a checkpoint key themselves.

The on-disk keys are those of every checkpoint written so far: top-level `global_step`, `images_seen`,
`train_seconds`, `model_spec` (with the latent-space record under `model_spec["latent"]`), `sample_shape`,
`image_data`, `wandb_run_id`, and the run's own record under RUN_FIELDS (`fit_finished`, the content hash)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

RUN_FIELDS = "lit_diffusion_run"  # the checkpoint's own record: step, images seen, fit finished, content hash
HASH_FIELD = "content_sha256"
BACKBONE_PREFIX = "backbone."  # state-dict keys of the trained network (the parameter count reads them)
DIFFUSION_MODEL, AUTOENCODER = "a diffusion model checkpoint", "an autoencoder checkpoint"  # what a record is


@dataclass(frozen=True)
class CheckpointRecord:
    path: Path
    global_step: int
    images_seen: int
    train_seconds: float  # time in fit, summed over resumes
    model_spec: dict | None  # the model section of the fit config (`load_module` rebuilds from it)
    wandb_run_id: str | None
    sample_shape: tuple[int, ...] | None
    backbone_parameters: int
    image_data: bool = False  # images in [-1, 1] (x0 thresholds apply); False for latents, tensors, old checkpoints
    latent: dict | None = None  # the latent-space record of a model trained on latents (None: pixel space)
    fit_finished: bool = False  # written when fit reached its budget (steps, images or time), not on a signal
    content_sha256: str | None = None  # None for checkpoints written before the hash existed
    shapes: dict = field(default_factory=dict, hash=False, compare=False)  # state-dict key -> tensor shape

    @property
    def kind(self) -> str:
        """What this checkpoint is, in words: DIFFUSION_MODEL, AUTOENCODER, or what it lacks."""
        spec = self.model_spec if isinstance(self.model_spec, dict) else {}
        if str(spec.get("class_path", "")).endswith("AutoencoderModule"):
            return AUTOENCODER
        if "backbone" in spec:
            return DIFFUSION_MODEL
        return "a file without a model record (not written by `lit-diffusion fit`)"


    @property
    def identity(self) -> str:
        """What distinguishes this checkpoint's content from any other state of the run (results computed from
        it, such as a comparison's scores, are keyed by it)."""
        return self.content_sha256 or f"step{self.global_step}-images{self.images_seen}"


def _parameters(state_dict: dict) -> int:
    """Backbone parameters counted from the tensors' shapes (a memory-mapped load reads no weight for it)."""
    return sum(v.numel() for k, v in state_dict.items() if k.startswith(BACKBONE_PREFIX))


def record_of(checkpoint: dict, path: str | Path) -> CheckpointRecord:
    """The record of a loaded checkpoint dict (or of a sharded folder's metadata, whose state dict is absent);
    an object that is no dict (not a training checkpoint) has an empty record, and its reader says what it lacks."""
    checkpoint = checkpoint if isinstance(checkpoint, dict) else {}
    shape = checkpoint.get("sample_shape")
    fields = checkpoint.get(RUN_FIELDS) or {}
    spec = checkpoint.get("model_spec")
    return CheckpointRecord(path=Path(path), global_step=int(checkpoint.get("global_step", 0)),
                            images_seen=int(checkpoint.get("images_seen", 0)),
                            train_seconds=float(checkpoint.get("train_seconds", 0.0)), model_spec=spec,
                            wandb_run_id=checkpoint.get("wandb_run_id"),
                            sample_shape=None if shape is None else tuple(int(d) for d in shape),
                            backbone_parameters=_parameters(checkpoint.get("state_dict") or {}),
                            image_data=bool(checkpoint.get("image_data", False)),
                            latent=(spec or {}).get("latent") if isinstance(spec, dict) else None,
                            fit_finished=bool(fields.get("fit_finished", False)),
                            content_sha256=fields.get(HASH_FIELD),
                            shapes={k: tuple(v.shape) for k, v in (checkpoint.get("state_dict") or {}).items()
                                    if hasattr(v, "shape")})


def shape_differences(saved: dict, mine: dict, prefixes: tuple[str, ...]) -> list[str]:
    """How two state dicts' shapes (key -> shape) differ under `prefixes`: tensors of another shape, then missing
    and unexpected ones, one short phrase each."""
    keys = lambda shapes: {k for k in shapes if k.startswith(prefixes)}  # noqa: E731
    wrong = [f"{k} {tuple(saved[k])} vs {tuple(mine[k])}" for k in sorted(keys(saved) & keys(mine))
             if tuple(saved[k]) != tuple(mine[k])]
    return wrong + [f"{k} missing" for k in sorted(keys(mine) - keys(saved))] + \
        [f"{k} unexpected" for k in sorted(keys(saved) - keys(mine))]
