"""The latent space of a latent dataset and of every model trained on one: which autoencoder, how its latents are
normalised, the images they decode to. One typed record, read by attribute everywhere.

On disk it stays the plain dict it always was, under the key "latent" of dataset.json's ``build`` and of a
checkpoint's ``model_spec`` (`to_dict` / `from_dict` convert, exactly: unknown keys are kept)::

    {"autoencoder": {"kind": "framework" | "diffusers", "location": ckpt path / folder / hub id,
                     "subfolder": str | None, "weights_sha256": ..., "in_channels", "latent_channels", "factor"},
     "normalization": {"kind": "scalar", "scale": s, "shift": m}       -> x = (z - m) * s   (SD-VAE: s = 0.18215)
                    | {"kind": "channel", "mean": [..], "std": [..]}   -> x = (z - mean_c) / std_c (EDM2, LightningDiT)
                    | {"kind": "none"},
     "image_shape": [C, H, W], "flips": bool, "stored": "posterior mean and std" (written by `data encode`)}

The diffusion model sees x = normalize(z) (latent_normalization.py); generation/latents.py decodes x to images.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields

from lit_diffusion.data.dataset_json import DatasetInfo
from lit_diffusion.data.latent_normalization import Normalization

LATENT_KEY = "latent"  # where dataset.json's build and a checkpoint's model_spec keep the record


def _split(record: dict, required: tuple[str, ...], optional: tuple[str, ...], what: str) -> tuple[dict, dict]:
    """(known keys, unknown keys) of a record; a ValueError naming the missing required keys."""
    if not isinstance(record, dict):
        raise ValueError(f"{what} must be a mapping, got {type(record).__name__}")
    missing = [k for k in required if k not in record]
    if missing:
        raise ValueError(f"{what} lacks {missing} (has {sorted(record)}): it was not written by lit_diffusion")
    known = required + optional
    return {k: record[k] for k in known if k in record}, {k: v for k, v in record.items() if k not in known}


@dataclass(frozen=True)
class AutoencoderRecord:
    """The autoencoder that made (and decodes) the latents, identified by the sha256 of its weights."""

    kind: str  # "framework" (a .ckpt of AutoencoderModule) or "diffusers" (a folder or hub id)
    location: str  # where it was when the latents were encoded
    subfolder: str | None
    weights_sha256: str
    in_channels: int  # image channels
    latent_channels: int
    factor: int  # spatial downsampling: image H = latent h * factor

    @classmethod
    def from_dict(cls, record: dict) -> AutoencoderRecord:
        known, _ = _split(record, tuple(f.name for f in fields(cls)), (), "the latent record's autoencoder")
        return cls(**known)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class LatentSpace:
    """A latent space: its autoencoder, the normalisation the diffusion model sees, the decoded image shape."""

    autoencoder: AutoencoderRecord
    normalization: dict  # the plain normalisation record; `normalizer` is its typed reader
    image_shape: tuple[int, ...]  # (C, H, W) of the decoded images
    flips: bool = False  # the mirrored image of each sample was encoded too
    stored: str | None = None  # what the shards hold per sample (None: a model's record, no shards)
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept for an exact round trip

    _REQUIRED = ("autoencoder", "normalization", "image_shape", "flips")

    def __post_init__(self) -> None:
        Normalization(self.normalization)  # fail now on an unknown kind or a bad scale, not at the first batch

    @property
    def normalizer(self) -> Normalization:
        """x = normalize(z), z = denormalize(x)."""
        return Normalization(self.normalization)

    @classmethod
    def from_dict(cls, record: dict) -> LatentSpace:
        known, extra = _split(record, cls._REQUIRED, ("stored",), "the latent record")
        return cls(autoencoder=AutoencoderRecord.from_dict(known["autoencoder"]),
                   normalization=copy.deepcopy(known["normalization"]), image_shape=tuple(known["image_shape"]),
                   flips=bool(known["flips"]), stored=known.get("stored"), extra=copy.deepcopy(extra))

    @classmethod
    def from_optional(cls, record: dict | None) -> LatentSpace | None:
        """The record of a model or checkpoint, None for a pixel-space one."""
        return None if record is None else cls.from_dict(record)

    @classmethod
    def of_dataset(cls, info: DatasetInfo) -> LatentSpace | None:
        """The latent space of a dataset written by `data encode` (None: not a latent dataset)."""
        record = info.build.get(LATENT_KEY) if info.kind == "tensor" else None
        return None if record is None else cls.from_dict(record)

    def to_dict(self) -> dict:
        """The plain record stored in dataset.json and checkpoints (JSON-safe, the keys in their usual order)."""
        out = {"autoencoder": self.autoencoder.to_dict(), "normalization": copy.deepcopy(self.normalization),
               "image_shape": list(self.image_shape), "flips": self.flips}
        if self.stored is not None:
            out["stored"] = self.stored
        return {**out, **copy.deepcopy(self.extra)}


def check_same_latent_space(dataset: LatentSpace | None, model: LatentSpace | None, where: str, who: str) -> None:
    """Shards (`where`) and a model (`who`) must agree on the latent space: same autoencoder weights and
    normalisation, or both in pixels."""
    if dataset is None and model is None:
        return
    if (dataset is None) != (model is None):
        space = lambda latent: "latents" if latent else "pixels"  # noqa: E731
        raise ValueError(f"{where} holds {space(dataset)} but {who} was trained on {space(model)}: "
                         f"use shards of the same kind")
    a, b = dataset.autoencoder, model.autoencoder
    if a.weights_sha256 != b.weights_sha256:
        raise ValueError(f"{where} was encoded with another autoencoder ({a.location}, sha256 "
                         f"{a.weights_sha256[:12]}) than {who} ({b.location}, sha256 {b.weights_sha256[:12]}): "
                         f"encode the images with `lit-diffusion data encode ... --autoencoder {b.location}`, or "
                         f"start a new run on these shards")
    if dataset.normalization != model.normalization:
        raise ValueError(f"{where} normalises its latents as {dataset.normalization}, {who} was trained "
                         f"with {model.normalization}: encode with the same --normalization")
