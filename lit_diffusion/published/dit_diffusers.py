"""diffusers' DiTTransformer2DModel (and the legacy Transformer2DModel in its adaLN-Zero patch layout, as the hub's
facebook/DiT-XL-2-256 stores it) -> the project's DiT.

The two compute the same function up to three settings the project's DiT exposes as options:
- time features: diffusers' CombinedTimestepLabelEmbeddings uses Timesteps(256, flip_sin_to_cos=True,
  downscale_freq_shift=1), frequencies exp(-ln 1e4 i / (half - 1)); the original DiT divides by half
  (time_embedding="dit_shift1" vs "dit");
- the LayerNorm before each MLP uses the config's norm_eps (1e-5 by default; the original DiT 1e-6);
- diffusers feeds the 0-based step index k for alphas_cumprod[k]: time_shift=-1 (objectives/paths.py).
diffusers keeps a copy of the time and label embedders in every block (norm1.emb); only block 0's is used
(for the final layer too), so the others must equal it.
"""
from __future__ import annotations

import torch

from lit_diffusion.published.diffusers_folder import DiffusersModel
from lit_diffusion.published.imported import DIT, ImportedModel, split_qkv
from lit_diffusion.published.keys import WrongCheckpoint, check_state_dict, require
from lit_diffusion.published.scheduler import objective_from_scheduler

CLASSES = ("DiTTransformer2DModel", "Transformer2DModel")
FREQUENCY_DIM = 256  # diffusers' and DiT's time-feature width
HINT = ("Give the transformer of a diffusers DiT pipeline (DiTTransformer2DModel, save_pretrained), or import the "
        "original facebookresearch/DiT .pt with `lit-diffusion import dit-pt`")


def dit_init_args(config: dict, where: str) -> dict:
    """The project DiT's init_args for a diffusers DiT config."""
    require(config, "_class_name", CLASSES, where)
    require(config, "norm_type", ("ada_norm_zero",), where, "ada_norm_zero")
    require(config, "activation_fn", ("gelu-approximate",), where, "gelu-approximate")
    require(config, "attention_bias", (True,), where, True)
    require(config, "norm_elementwise_affine", (False,), where, False)
    for key in ("cross_attention_dim", "num_vector_embeds"):
        require(config, key, (None,), where)
    for key in ("only_cross_attention", "double_self_attention"):  # keys of the legacy Transformer2DModel
        require(config, key, (False,), where, False)
    if config.get("patch_size") is None or not config.get("num_embeds_ada_norm"):
        raise WrongCheckpoint(f"{where}: a DiT needs patch_size and num_embeds_ada_norm (class count); found "
                              f"{config.get('patch_size')!r}, {config.get('num_embeds_ada_norm')!r}. {HINT}")
    heads, head_dim = int(config.get("num_attention_heads", 16)), int(config.get("attention_head_dim", 72))
    in_channels = int(config.get("in_channels", 4))
    return {"in_channels": in_channels, "out_channels": int(config.get("out_channels") or in_channels),
            "input_size": int(config.get("sample_size", 32)), "patch_size": int(config["patch_size"]),
            "hidden_size": heads * head_dim, "depth": int(config.get("num_layers", 28)), "num_heads": heads,
            "mlp_ratio": 4.0, "num_classes": int(config["num_embeds_ada_norm"]), "time_scale": 1000.0,
            "time_shift": -1.0, "time_embedding": "dit_shift1", "mlp_norm_eps": float(config.get("norm_eps", 1e-5))}


def _emb(i: int) -> str:
    return f"transformer_blocks.{i}.norm1.emb"


def expected_shapes(a: dict) -> dict[str, tuple[int, ...]]:
    """Every key of a diffusers DiT state dict with this config, and its shape."""
    d, p, m = a["hidden_size"], a["patch_size"], int(a["hidden_size"] * a["mlp_ratio"])
    shapes = {"pos_embed.proj.weight": (d, a["in_channels"], p, p), "pos_embed.proj.bias": (d,),
              "proj_out_1.weight": (2 * d, d), "proj_out_1.bias": (2 * d,),
              "proj_out_2.weight": (p * p * a["out_channels"], d), "proj_out_2.bias": (p * p * a["out_channels"],)}
    for i in range(a["depth"]):
        block = f"transformer_blocks.{i}"
        linears = {f"{_emb(i)}.timestep_embedder.linear_1": (d, FREQUENCY_DIM),
                   f"{_emb(i)}.timestep_embedder.linear_2": (d, d), f"{block}.norm1.linear": (6 * d, d),
                   **{f"{block}.attn1.to_{n}": (d, d) for n in "qkv"}, f"{block}.attn1.to_out.0": (d, d),
                   f"{block}.ff.net.0.proj": (m, d), f"{block}.ff.net.2": (d, m)}
        for name, shape in linears.items():
            shapes |= {f"{name}.weight": shape, f"{name}.bias": (shape[0],)}
        shapes[f"{_emb(i)}.class_embedder.embedding_table.weight"] = (a["num_classes"] + 1, d)
    return shapes


def _check_shared_embedders(state: dict, depth: int, where: str) -> None:
    """Every block's copy of the time / label embedders equals block 0's (the one diffusers uses)."""
    differing = [key for i in range(1, depth) for key in state
                 if key.startswith(_emb(i) + ".")
                 and not torch.equal(state[key], state[_emb(0) + key[len(_emb(i)):]])]
    if differing:
        raise WrongCheckpoint(f"{where}: {len(differing)} per-block embedder tensor(s) differ from block 0's (e.g. "
                              f"{', '.join(differing[:3])}); diffusers uses only block 0's, the project DiT has one "
                              f"embedder: tie them (copy block 0's) or train the model with one embedder")


def dit_weights(state: dict, a: dict) -> dict[str, torch.Tensor]:
    """The project DiT's state dict (without pos_embed) from a checked diffusers DiT state dict."""
    out = {"patch_embed.weight": state["pos_embed.proj.weight"], "patch_embed.bias": state["pos_embed.proj.bias"],
           "final_layer.adaLN_modulation.1.weight": state["proj_out_1.weight"],
           "final_layer.adaLN_modulation.1.bias": state["proj_out_1.bias"],
           "final_layer.linear.weight": state["proj_out_2.weight"], "final_layer.linear.bias": state["proj_out_2.bias"],
           "y_embedder.embedding.weight": state[f"{_emb(0)}.class_embedder.embedding_table.weight"]}
    for n, name in ((0, "linear_1"), (2, "linear_2")):
        for kind in ("weight", "bias"):
            out[f"t_embedder.mlp.{n}.{kind}"] = state[f"{_emb(0)}.timestep_embedder.{name}.{kind}"]
    for i in range(a["depth"]):
        src, dst = f"transformer_blocks.{i}", f"blocks.{i}"
        out |= {f"{dst}.attn.{k}": v for k, v in split_qkv(state, f"{src}.attn1").items()}
        for kind in ("weight", "bias"):
            out[f"{dst}.adaLN_modulation.1.{kind}"] = state[f"{src}.norm1.linear.{kind}"]
            out[f"{dst}.mlp.fc1.{kind}"] = state[f"{src}.ff.net.0.proj.{kind}"]
            out[f"{dst}.mlp.fc2.{kind}"] = state[f"{src}.ff.net.2.{kind}"]
    return out


def import_diffusers_dit(model: DiffusersModel, variance: str | None = None) -> ImportedModel:
    """A diffusers DiT as a project DiT with its DDPM objective (learned variance when it has 2x the channels)."""
    where = model.where
    args = dit_init_args(model.config, where)
    state = {k: v for k, v in model.state.items() if k != "pos_embed.pos_embed"}  # a fixed buffer: recomputed
    check_state_dict(state, expected_shapes(args), f"diffusers DiT {where}", HINT)
    _check_shared_embedders(state, args["depth"], where)
    learned = args["out_channels"] == 2 * args["in_channels"]
    if not learned and args["out_channels"] != args["in_channels"]:
        raise WrongCheckpoint(f"{where}: out_channels={args['out_channels']} is neither in_channels "
                              f"({args['in_channels']}) nor twice it (a learned variance)")
    objective = objective_from_scheduler(model.scheduler, learned, args["num_classes"], where, variance)
    return ImportedModel(backbone={"class_path": DIT, "init_args": args}, objective=objective,
                         weights=dit_weights(state, args),
                         sample_shape=[args["in_channels"], args["input_size"], args["input_size"]],
                         conditional=True, source={"format": "diffusers", "location": where})
