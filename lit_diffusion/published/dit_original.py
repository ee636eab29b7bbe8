"""The original facebookresearch/DiT checkpoints (DiT-XL-2-256x256.pt: a plain state dict of the EMA model; or a
training checkpoint of their train.py, {"model", "ema", "opt", "args"}, whose EMA is taken) -> the project's DiT.

The project's DiT is that architecture (Peebles & Xie 2023, models.py): the names differ only in the patch and
label embedders, and the time features and norms are the original's (time_embedding="dit", mlp_norm_eps=1e-6).
The checkpoint stores no head count; it is read from the DiT size with that width (Table 1), or given.
Their diffusion code feeds the 0-based step index k for alphas_cumprod[k]: time_shift=-1 (objectives/paths.py).
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path

import torch

from lit_diffusion.backbones.presets import DIT_PRESETS
from lit_diffusion.backbones.embeddings import sincos_pos_embed_2d
from lit_diffusion.published.imported import DIT, ImportedModel, ddpm_objective
from lit_diffusion.published.keys import WrongCheckpoint, check_state_dict

HINT = ("Give a checkpoint of facebookresearch/DiT (e.g. DiT-XL-2-256x256.pt, or results/.../checkpoints/N.pt of "
        "their train.py), or import a diffusers folder with `lit-diffusion import diffusers`")
RENAMED = {"x_embedder.proj.weight": "patch_embed.weight", "x_embedder.proj.bias": "patch_embed.bias",
           "y_embedder.embedding_table.weight": "y_embedder.embedding.weight"}
HEADS_BY_WIDTH = {p["hidden_size"]: p["num_heads"] for name, p in DIT_PRESETS.items() if name != "debug"}


def read_dit_pt(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a DiT .pt (the EMA of a training checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: download DiT-XL-2-256x256.pt from "
                                f"https://dl.fbaipublicfiles.com/DiT/models/ (a machine with network access)")
    try:
        # train.py saves its argparse.Namespace under "args": allow exactly that class for this one load, so a
        # file holding any other pickled object is still refused by the weights-only unpickler
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found is None:
            raise WrongCheckpoint(f"{path} is not a torch checkpoint of tensors ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0][:160]}). {HINT}") from None
        raise WrongCheckpoint(f"{path} holds pickled objects other than tensors and train.py's argparse.Namespace "
                              f"({found.group(1)}); lit-diffusion does not unpickle them: on a machine you trust, "
                              f"re-save the weights alone, torch.save(torch.load(path, weights_only=False)['ema'], "
                              f"'ema.pt'), and import that file") from None
    except Exception as error:
        raise WrongCheckpoint(f"{path} is not a torch checkpoint of tensors ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:160]}). {HINT}") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("ema"), dict):
        ckpt = ckpt["ema"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):  # a training checkpoint without its EMA
        ckpt = ckpt["model"]
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise WrongCheckpoint(f"{path} holds no state dict of tensors. {HINT}")
    return ckpt


def _shape(state: dict, key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise WrongCheckpoint(f"{where} does not fit: missing key {key} (found {len(state)} keys, e.g. "
                              f"{', '.join(sorted(state)[:4])}). {HINT}")
    return tuple(state[key].shape)


def dit_pt_init_args(state: dict, where: str, num_heads: int | None = None) -> dict:
    """The project DiT's init_args read from the shapes of an original DiT state dict."""
    hidden, in_channels, patch, _ = _shape(state, "x_embedder.proj.weight", where)
    tokens = _shape(state, "pos_embed", where)[1]
    grid = round(tokens ** 0.5)
    if grid * grid != tokens:
        raise WrongCheckpoint(f"{where}: pos_embed has {tokens} tokens, not a square grid. {HINT}")
    depth = len({m.group(1) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    out_channels = _shape(state, "final_layer.linear.weight", where)[0] // (patch * patch)
    classes = _shape(state, "y_embedder.embedding_table.weight", where)[0] - 1  # plus the null class
    mlp = _shape(state, "blocks.0.mlp.fc1.weight", where)[0]
    heads = num_heads or HEADS_BY_WIDTH.get(hidden)
    if heads is None:
        raise ValueError(f"{where}: hidden size {hidden} is none of the DiT sizes {sorted(HEADS_BY_WIDTH)}; give "
                         f"the head count with --num_heads")
    return {"in_channels": in_channels, "out_channels": out_channels, "input_size": grid * patch,
            "patch_size": patch, "hidden_size": hidden, "depth": depth, "num_heads": heads,
            "mlp_ratio": mlp / hidden, "num_classes": classes, "time_scale": 1000.0, "time_shift": -1.0,
            "time_embedding": "dit", "mlp_norm_eps": 1e-6}


def expected_shapes(a: dict) -> dict[str, tuple[int, ...]]:
    d, p, m = a["hidden_size"], a["patch_size"], int(a["hidden_size"] * a["mlp_ratio"])
    t = (a["input_size"] // p) ** 2
    shapes = {"x_embedder.proj.weight": (d, a["in_channels"], p, p), "x_embedder.proj.bias": (d,),
              "pos_embed": (1, t, d), "y_embedder.embedding_table.weight": (a["num_classes"] + 1, d)}
    linears = {"t_embedder.mlp.0": (d, 256), "t_embedder.mlp.2": (d, d),
               "final_layer.linear": (p * p * a["out_channels"], d), "final_layer.adaLN_modulation.1": (2 * d, d)}
    for i in range(a["depth"]):
        linears |= {f"blocks.{i}.attn.qkv": (3 * d, d), f"blocks.{i}.attn.proj": (d, d),
                    f"blocks.{i}.mlp.fc1": (m, d), f"blocks.{i}.mlp.fc2": (d, m),
                    f"blocks.{i}.adaLN_modulation.1": (6 * d, d)}
    for name, shape in linears.items():
        shapes |= {f"{name}.weight": shape, f"{name}.bias": (shape[0],)}
    return shapes


def import_dit_pt(path: str | Path, num_heads: int | None = None) -> ImportedModel:
    where = str(path)
    state = read_dit_pt(path)
    args = dit_pt_init_args(state, where, num_heads)
    check_state_dict(state, expected_shapes(args), f"DiT checkpoint {where}", HINT)
    # the fixed positions are recomputed by the project; a file whose positions differ is another model
    grid = args["input_size"] // args["patch_size"]
    own = sincos_pos_embed_2d(args["hidden_size"], grid, grid)
    if not torch.allclose(state["pos_embed"][0].float(), own, atol=1e-5):
        raise WrongCheckpoint(f"{where}: pos_embed is not DiT's fixed 2-D sin-cos embedding (max difference "
                              f"{(state['pos_embed'][0].float() - own).abs().max():.3g}). {HINT}")
    weights = {RENAMED.get(k, k): v for k, v in state.items() if k != "pos_embed"}
    learned = args["out_channels"] == 2 * args["in_channels"]
    objective = ddpm_objective("eps", "linear", "learned_range" if learned else "fixed_small", args["num_classes"])
    return ImportedModel(backbone={"class_path": DIT, "init_args": args}, objective=objective, weights=weights,
                         sample_shape=[args["in_channels"], args["input_size"], args["input_size"]],
                         conditional=args["num_classes"] > 0, source={"format": "dit-pt", "location": where})
