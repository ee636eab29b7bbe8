"""Reading a diffusers model as written by `save_pretrained`: its config.json and its weights (safetensors or
torch .bin, single-file or sharded), from a model folder, a pipeline folder (model_index.json with one subfolder
per component) or, on a machine with network access, a Hugging Face hub id.

The weights are read directly (safetensors / torch.load with weights_only), so that a folder of another
architecture fails here with the keys named (keys.py) instead of being half-loaded; diffusers itself is not
needed to import a model."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from lit_diffusion.published.keys import WrongCheckpoint

WEIGHTS = "diffusion_pytorch_model"
COMPONENTS = ("transformer", "unet")  # the denoiser's subfolder in a DiT / DDPM pipeline
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
SCHEDULER = "scheduler_config.json"


@dataclass
class DiffusersModel:
    config: dict  # the model's config.json
    state: dict[str, torch.Tensor]
    scheduler: dict | None  # the pipeline's scheduler/scheduler_config.json, where there is one
    where: str  # the folder the model was read from


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        patterns = ["model_index.json", "config.json", SCHEDULER, f"{WEIGHTS}*", "scheduler/*"]
        patterns += [f"{c}/*" for c in COMPONENTS]
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as error:  # offline, unknown id, gated: one message naming both readings of the name
        first = str(error).splitlines()[0][:200] if str(error) else ""
        raise FileNotFoundError(f"{repo_id!r} is not a local folder, and downloading it from the Hugging Face hub "
                                f"failed ({type(error).__name__}: {first}); give a folder written by "
                                f"save_pretrained (or `huggingface-cli download {repo_id} --local-dir DIR`)") from None


def _model_folder(location: str) -> tuple[Path, Path]:
    """(the model's folder, the folder to look for its scheduler config in: the pipeline root or the parent)."""
    path = Path(location).expanduser()
    if not path.exists():
        if not HUB_ID.fullmatch(location):
            raise FileNotFoundError(f"{location} does not exist: give a diffusers model or pipeline folder, or a hub "
                                    f"id such as google/ddpm-cifar10-32")
        path = _from_hub(location)
    if not path.is_dir():
        raise WrongCheckpoint(f"{path} is a file: give the folder written by save_pretrained (for an original DiT .pt "
                              f"file use `lit-diffusion import dit-pt`)")
    for component in COMPONENTS:
        if (path / component / "config.json").is_file():
            return path / component, path
    if (path / "model_index.json").is_file() and not (path / "config.json").is_file():
        raise WrongCheckpoint(f"{path} is a diffusers pipeline without a {' or '.join(COMPONENTS)} model (its "
                              f"model_index.json names {sorted(json.loads((path / 'model_index.json').read_text()))}); "
                              f"give a DiT or DDPM pipeline, or the model folder itself")
    if not (path / "config.json").is_file():
        raise WrongCheckpoint(f"{path} holds no config.json: give a folder written by save_pretrained (a model "
                              f"folder, or a pipeline folder with {' or '.join(c + '/' for c in COMPONENTS)})")
    return path, path.parent


def _weight_files(folder: Path) -> list[Path]:
    for suffix in (".safetensors", ".bin"):
        index = folder / f"{WEIGHTS}{suffix}.index.json"
        if index.is_file():  # sharded: the index maps every key to its shard
            return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        single = folder / f"{WEIGHTS}{suffix}"
        if single.is_file():
            return [single]
    variants = sorted(folder.glob(f"{WEIGHTS}.*.safetensors")) + sorted(folder.glob(f"{WEIGHTS}.*.bin"))
    if variants:  # e.g. the fp16 variant alone
        return variants[:1]
    raise WrongCheckpoint(f"{folder} holds no {WEIGHTS}.safetensors or .bin (found: "
                          f"{sorted(p.name for p in folder.iterdir())[:8]}); give a folder written by save_pretrained")


def _load(file: Path) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    return torch.load(file, map_location="cpu", weights_only=True)


def read_diffusers_model(location: str) -> DiffusersModel:
    """The denoiser of a diffusers model folder, pipeline folder (its transformer/ or unet/) or hub id."""
    folder, root = _model_folder(location)
    try:
        config = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise WrongCheckpoint(f"{folder / 'config.json'} is not valid JSON ({error})") from None
    state: dict[str, torch.Tensor] = {}
    for file in _weight_files(folder):
        state.update(_load(file))
    # a pipeline's scheduler/ (today's layout), or scheduler_config.json beside the model (early hub repos)
    found = [f for f in (root / "scheduler" / SCHEDULER, folder / SCHEDULER) if f.is_file()]
    scheduler = json.loads(found[0].read_text()) if found else None
    return DiffusersModel(config=config, state=state, scheduler=scheduler, where=str(folder))
