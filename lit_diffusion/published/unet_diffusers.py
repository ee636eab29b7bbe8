"""diffusers' UNet2DModel in the DDPM layout (google/ddpm-cifar10-32: DownBlock2D / AttnDownBlock2D, additive
time conditioning, one mid attention) -> the project's U-Net.

Settings read from the config: downsample_padding 0 is Ho et al.'s right-and-bottom padding
(downsample_padding="right_bottom"), flip_sin_to_cos=False with freq_shift=1 is their sin-first time features
(time_embedding="ho"; True with 0 is "dit"), and the 0-based step index diffusers feeds is time_shift=-1
(objectives/paths.py). Heads: diffusers gives each attention width // attention_head_dim heads (8 when the config
omits it, one head when it is null); the project has one head count, so every attention must agree.
Attention weights saved by old diffusers versions (query / key / value / proj_attn) are read too.
"""
from __future__ import annotations

import torch

from lit_diffusion.published.diffusers_folder import DiffusersModel
from lit_diffusion.published.imported import UNET, ImportedModel, split_qkv
from lit_diffusion.published.keys import WrongCheckpoint, check_state_dict, require
from lit_diffusion.published.scheduler import objective_from_scheduler

DOWN = {"DownBlock2D": False, "AttnDownBlock2D": True}
UP = {"UpBlock2D": False, "AttnUpBlock2D": True}
TIME_FEATURES = {(False, 1): "ho", (True, 0): "dit"}  # (flip_sin_to_cos, freq_shift) -> project kind
PADDINGS = {0: "right_bottom", 1: "same"}
NORM_EPS = 1e-6  # the project U-Net's GroupNorm epsilon (Ho et al.'s)
LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
HINT = ("Give the unet of a diffusers DDPM pipeline (UNet2DModel with DownBlock2D/AttnDownBlock2D blocks, "
        "save_pretrained), e.g. google/ddpm-cifar10-32")


def _heads(config: dict, widths: list[int], where: str) -> int:
    head_dim = config.get("attention_head_dim", 8)  # diffusers' default when the key is absent
    if head_dim is None:
        return 1
    heads = {w // int(head_dim) for w in widths}
    if len(heads) != 1 or any(w % int(head_dim) for w in widths):
        raise WrongCheckpoint(f"{where}: attention_head_dim={head_dim} gives attention widths {widths} different "
                              f"head counts; the project U-Net has one head count for all of them")
    return heads.pop()


def unet_init_args(config: dict, where: str) -> dict:
    """The project U-Net's init_args for a diffusers UNet2DModel config in the DDPM layout."""
    require(config, "_class_name", ("UNet2DModel",), where)
    require(config, "time_embedding_type", ("positional",), where, "positional")
    require(config, "act_fn", ("silu",), where, "silu")
    require(config, "center_input_sample", (False,), where, False)
    require(config, "mid_block_scale_factor", (1, 1.0), where, 1)
    require(config, "mid_block_type", ("UNetMidBlock2D",), where, "UNetMidBlock2D")
    require(config, "add_attention", (True,), where, True)
    require(config, "downsample_type", ("conv",), where, "conv")
    require(config, "upsample_type", ("conv",), where, "conv")
    # "scale_shift" blocks come with a mid attention without GroupNorm in diffusers: not the project's layout
    require(config, "resnet_time_scale_shift", ("default",), where, "default")
    for key in ("class_embed_type", "num_class_embeds"):
        require(config, key, (None,), where)  # class-conditional UNet2DModels have no project equivalent yet
    if abs(float(config.get("norm_eps", 1e-5)) - NORM_EPS) > 1e-12:
        raise WrongCheckpoint(f"{where}: norm_eps={config.get('norm_eps', 1e-5)} is not supported by the import "
                              f"(the project U-Net's GroupNorms use {NORM_EPS}, Ho et al.'s)")
    features = TIME_FEATURES.get((bool(config.get("flip_sin_to_cos", True)), int(config.get("freq_shift", 0))))
    padding = PADDINGS.get(int(config.get("downsample_padding", 1)))
    if features is None or padding is None:
        raise WrongCheckpoint(f"{where}: flip_sin_to_cos/freq_shift {config.get('flip_sin_to_cos')}/"
                              f"{config.get('freq_shift')} or downsample_padding {config.get('downsample_padding')} "
                              f"is not supported (supported: {list(TIME_FEATURES)}, {list(PADDINGS)})")
    widths = [int(w) for w in config.get("block_out_channels", ())]
    down = [DOWN.get(b) for b in config.get("down_block_types", ())]
    up = [UP.get(b) for b in config.get("up_block_types", ())]
    if not widths or None in down or None in up or len(down) != len(widths) or up != down[::-1]:
        raise WrongCheckpoint(f"{where}: blocks {config.get('down_block_types')} / {config.get('up_block_types')} "
                              f"with widths {widths} are not the DDPM layout (DownBlock2D/AttnDownBlock2D and the "
                              f"mirrored UpBlock2D/AttnUpBlock2D, attention at the same levels). {HINT}")
    if any(w % widths[0] for w in widths):
        raise WrongCheckpoint(f"{where}: block_out_channels {widths} are not multiples of the first")
    if config.get("time_embedding_dim") not in (None, 4 * widths[0]):
        raise WrongCheckpoint(f"{where}: time_embedding_dim={config['time_embedding_dim']} (the project uses "
                              f"4 x {widths[0]})")
    levels = [i for i, attention in enumerate(down) if attention]
    groups = config.get("attn_norm_num_groups")
    if groups not in (None, config.get("norm_num_groups", 32)):
        raise WrongCheckpoint(f"{where}: attn_norm_num_groups={groups} differs from norm_num_groups")
    in_channels = int(config.get("in_channels", 3))
    size = config.get("sample_size") or 32
    return {"in_channels": in_channels, "out_channels": int(config.get("out_channels", 3)), "channels": widths[0],
            "channel_mult": [w // widths[0] for w in widths], "num_res_blocks": int(config.get("layers_per_block", 2)),
            "attention_levels": levels, "num_heads": _heads(config, [widths[i] for i in levels] + [widths[-1]], where),
            "dropout": float(config.get("dropout", 0.0)), "norm_groups": int(config.get("norm_num_groups", 32)),
            "scale_shift": False, "num_classes": 0,
            "time_scale": 1000.0, "time_shift": -1.0, "downsample_padding": padding, "time_embedding": features,
            "_sample_size": list(size) if isinstance(size, (list, tuple)) else [int(size), int(size)]}


def _resnet(src: str, dst: str, c_in: int, c_out: int, emb: int) -> list[tuple]:
    """(source prefix, project prefix, weight shape, bias shape) of one residual block (additive time conditioning)."""
    rows = [(f"{src}.norm1", f"{dst}.norm1", (c_in,), (c_in,)),
            (f"{src}.conv1", f"{dst}.conv1", (c_out, c_in, 3, 3), (c_out,)),
            (f"{src}.time_emb_proj", f"{dst}.emb_proj.1", (c_out, emb), (c_out,)),
            (f"{src}.norm2", f"{dst}.norm2", (c_out,), (c_out,)),
            (f"{src}.conv2", f"{dst}.conv2", (c_out, c_out, 3, 3), (c_out,))]
    if c_in != c_out:
        rows.append((f"{src}.conv_shortcut", f"{dst}.skip", (c_out, c_in, 1, 1), (c_out,)))
    return rows


def _attention(src: str, dst: str, c: int) -> tuple[list[tuple], list[tuple[str, str]]]:
    rows = [(f"{src}.group_norm", f"{dst}.norm", (c,), (c,))]
    rows += [(f"{src}.{n}", None, (c, c), (c,)) for n in ("to_q", "to_k", "to_v", "to_out.0")]
    return rows, [(src, f"{dst}.attn")]


def layout(a: dict) -> tuple[list[tuple], list[tuple[str, str]]]:
    """The U-Net as rows (source prefix, project prefix or None, weight shape, bias shape), plus the attentions
    (source prefix, project prefix) whose q, k, v fuse into one qkv."""
    c, emb, r = a["channels"], 4 * a["channels"], a["num_res_blocks"]
    widths = [c * m for m in a["channel_mult"]]
    rows = [("conv_in", "input_conv", (c, a["in_channels"], 3, 3), (c,)),
            ("time_embedding.linear_1", "t_embedder.mlp.0", (emb, c), (emb,)),
            ("time_embedding.linear_2", "t_embedder.mlp.2", (emb, emb), (emb,)),
            ("conv_norm_out", "out_norm", (c,), (c,)), ("conv_out", "out_conv", (a["out_channels"], c, 3, 3),
                                                        (a["out_channels"],))]
    fused: list[tuple[str, str]] = []

    def attention(src, dst, width):
        more, pairs = _attention(src, dst, width)
        rows.extend(more)
        fused.extend(pairs)

    j, width, skips = 0, c, [c]
    for level, w in enumerate(widths):
        for b in range(r):
            rows.extend(_resnet(f"down_blocks.{level}.resnets.{b}", f"down.{j}", width, w, emb))
            if level in a["attention_levels"]:
                attention(f"down_blocks.{level}.attentions.{b}", f"down.{j}.attention", w)
            width, j = w, j + 1
            skips.append(w)
        if level < len(widths) - 1:
            rows.append((f"down_blocks.{level}.downsamplers.0.conv", f"down.{j}.conv", (w, w, 3, 3), (w,)))
            j += 1
            skips.append(w)
    rows.extend(_resnet("mid_block.resnets.0", "mid.0", width, width, emb))
    attention("mid_block.attentions.0", "mid.0.attention", width)
    rows.extend(_resnet("mid_block.resnets.1", "mid.1", width, width, emb))
    j = 0
    for i, level in enumerate(reversed(range(len(widths)))):
        w = widths[level]
        for b in range(r + 1):
            rows.extend(_resnet(f"up_blocks.{i}.resnets.{b}", f"up.{j}", width + skips.pop(), w, emb))
            if level in a["attention_levels"]:
                attention(f"up_blocks.{i}.attentions.{b}", f"up.{j}.attention", w)
            width, j = w, j + 1
        if level > 0:
            rows.append((f"up_blocks.{i}.upsamplers.0.conv", f"up.{j}.conv", (w, w, 3, 3), (w,)))
            j += 1
    return rows, fused


def modern_attention_names(state: dict) -> dict:
    """Old diffusers attention names (query, key, value, proj_attn) as today's (to_q, to_k, to_v, to_out.0)."""
    out = {}
    for key, value in state.items():
        *head, name, kind = key.split(".")
        out[".".join([*head, LEGACY_ATTENTION.get(name, name), kind]) if ".attentions." in key else key] = value
    return out


def import_diffusers_unet(model: DiffusersModel, variance: str | None = None) -> ImportedModel:
    """A diffusers DDPM U-Net as the project's U-Net with its DDPM objective."""
    where = model.where
    args = unet_init_args(model.config, where)
    height, width = args.pop("_sample_size")
    rows, fused = layout(args)
    state = modern_attention_names(model.state)
    expected = {f"{src}.weight": w for src, _, w, _ in rows} | {f"{src}.bias": b for src, _, _, b in rows}
    check_state_dict(state, expected, f"diffusers UNet2DModel {where}", HINT)
    weights: dict[str, torch.Tensor] = {}
    for src, dst, _, _ in rows:
        if dst is not None:
            weights |= {f"{dst}.weight": state[f"{src}.weight"], f"{dst}.bias": state[f"{src}.bias"]}
    for src, dst in fused:
        weights |= {f"{dst}.{k}": v for k, v in split_qkv(state, src).items()}
    learned = args["out_channels"] == 2 * args["in_channels"]
    if not learned and args["out_channels"] != args["in_channels"]:
        raise WrongCheckpoint(f"{where}: out_channels={args['out_channels']} is neither in_channels "
                              f"({args['in_channels']}) nor twice it (a learned variance)")
    objective = objective_from_scheduler(model.scheduler, learned, 0, where, variance)
    return ImportedModel(backbone={"class_path": UNET, "init_args": args}, objective=objective, weights=weights,
                         sample_shape=[args["in_channels"], height, width], conditional=False,
                         source={"format": "diffusers", "location": where}, image_data=True)
