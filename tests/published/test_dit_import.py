"""A diffusers DiTTransformer2DModel (DiT-XL/2's layout with its learned variance, smaller) imported as the
project DiT computes diffusers' function to 1e-5 in float32, and the project's DDPM ancestral sampler with the
learned variance reproduces diffusers' DDPMScheduler(variance_type="learned_range") loop on the same noise.
The original facebookresearch/DiT checkpoint layout imports to the original DiT function."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
from tiny_published import DIT, original_dit_state, project_grid, save_pipeline, tiny_dit  # noqa: E402

from lit_diffusion.published import build_module, import_diffusers, import_dit_pt  # noqa: E402
from lit_diffusion.published.keys import WrongCheckpoint  # noqa: E402
from lit_diffusion.samplers import sample_ddpm  # noqa: E402

B = 3


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, DIT["in_channels"], DIT["sample_size"], DIT["sample_size"], generator=g)
    return x, torch.tensor([0, 371, 999]), torch.tensor([0, 9, 4])


def imported(model, tmp_path, scheduler=None):
    from diffusers import DDPMScheduler

    save_pipeline(model, scheduler or DDPMScheduler(), tmp_path / "pipe", "transformer")
    return build_module(import_diffusers(str(tmp_path / "pipe")))


def test_imported_dit_output_equals_diffusers(tmp_path):
    reference = tiny_dit()
    module = imported(reference, tmp_path)
    spec = module.model_spec
    assert spec["objective"]["init_args"]["variance"] == "learned_range"  # 8 = 2 x 4 output channels
    assert spec["backbone"]["init_args"]["time_embedding"] == "dit_shift1"
    assert spec["conditional"] and module.sample_shape == (4, 8, 8)
    x, k, y = inputs()
    with torch.no_grad():
        expected = reference(x, timestep=k, class_labels=y).sample
        got = module.ema.shadow(x, (k + 1) / 1000.0, y)
    assert got.shape == (B, 8, 8, 8) and expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # the same weights with the original DiT's time features and norm are another function: the options matter
    from lit_diffusion.backbones import DiT

    original = DiT(**{**spec["backbone"]["init_args"], "time_embedding": "dit", "mlp_norm_eps": 1e-6}).eval()
    original.load_state_dict(module.ema.shadow.state_dict())
    with torch.no_grad():
        assert (original(x, (k + 1) / 1000.0, y) - expected).abs().max() > 1e-3


def test_ddpm_learned_variance_loop_equals_diffusers_scheduler(tmp_path):
    """diffusers' DDPMScheduler(variance_type="learned_range", 10 steps, no clipping) stepped on the transformer's
    output vs the project's DDPM ancestral sampler with the learned variance, on diffusers' timesteps
    (t = (k + 1) / 1000, then 0), both drawing the initial and per-step noise from one seeded generator in the same
    order. Tolerance 1e-5 relative to the samples' largest value: an untrained network's first x0 prediction
    divides by alpha at k = 999 (0.0064), so samples reach |x| ~ 300, where float32 resolves ~3e-5; diffusers keeps
    its schedule in float32, the project in float64 (measured: 5e-7 relative at 10 steps, 4.5e-6 at 50).
    DiTPipeline itself needs a VAE and drops the variance channels, so the scheduler loop is written out here."""
    from diffusers import DDPMScheduler

    reference = tiny_dit()
    scheduler = DDPMScheduler(variance_type="learned_range", clip_sample=False)
    module = imported(reference, tmp_path, scheduler)
    scheduler.set_timesteps(10)
    _, _, y = inputs()
    shape = (B, 4, 8, 8)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        for k in scheduler.timesteps:
            out = reference(x, timestep=k.expand(B), class_labels=y).sample
            x = scheduler.step(out, k, x, generator=g).prev_sample
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(shape, generator=g)
    predict = module.objective.predictor(module.ema.shadow, cond=y)
    got = sample_ddpm(module.objective.path, predict, noise, project_grid(scheduler.timesteps), generator=g)
    assert got.nfe == 10
    assert (got.x0 - x).abs().max() <= 1e-5 * x.abs().max()


def test_original_dit_checkpoint_imports_to_the_original_function(tmp_path):
    """A facebookresearch/DiT state dict (their names, fused qkv, stored positions) against diffusers set to the
    original DiT's function: frequencies exp(-ln 1e4 i / half) (downscale_freq_shift 0) and LayerNorm eps 1e-6."""
    reference = tiny_dit(norm_eps=1e-6)
    for block in reference.transformer_blocks:
        block.norm1.emb.time_proj.downscale_freq_shift = 0
    torch.save(original_dit_state(reference), tmp_path / "DiT-tiny.pt")
    imported_model = import_dit_pt(tmp_path / "DiT-tiny.pt", num_heads=DIT["num_attention_heads"])
    assert imported_model.backbone["init_args"]["time_embedding"] == "dit"
    module = build_module(imported_model)
    x, k, y = inputs()
    with torch.no_grad():
        expected = reference(x, timestep=k, class_labels=y).sample
        got = module.ema.shadow(x, (k + 1) / 1000.0, y)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_a_training_checkpoint_of_dit_gives_its_ema(tmp_path):
    state = original_dit_state(tiny_dit(norm_eps=1e-6))
    ema = {k: v + 1 for k, v in state.items()}
    ema["pos_embed"] = state["pos_embed"]
    torch.save({"model": state, "ema": ema, "opt": {}, "args": None}, tmp_path / "0001000.pt")
    weights = import_dit_pt(tmp_path / "0001000.pt", num_heads=2).weights
    torch.testing.assert_close(weights["patch_embed.weight"], ema["x_embedder.proj.weight"])


def test_untied_block_embedders_are_refused_with_the_keys_named(tmp_path):
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(0)
    DiTTransformer2DModel(**DIT).save_pretrained(tmp_path / "transformer")  # every block its own random embedder
    with pytest.raises(WrongCheckpoint, match=r"transformer_blocks\.1\.norm1\.emb\."):
        import_diffusers(str(tmp_path / "transformer"))


def test_the_hub_dit_xl2_config_maps_onto_the_xl2_preset():
    """facebook/DiT-XL-2-256's transformer config is a legacy Transformer2DModel in the adaLN-Zero patch layout."""
    from lit_diffusion.backbones.presets import DIT_PRESETS
    from lit_diffusion.published.dit_diffusers import dit_init_args

    config = {"_class_name": "Transformer2DModel", "activation_fn": "gelu-approximate", "attention_bias": True,
              "attention_head_dim": 72, "cross_attention_dim": None, "in_channels": 4, "norm_elementwise_affine": False,
              "norm_type": "ada_norm_zero", "num_attention_heads": 16, "num_embeds_ada_norm": 1000, "num_layers": 28,
              "num_vector_embeds": None, "only_cross_attention": False, "out_channels": 8, "patch_size": 2,
              "sample_size": 32, "upcast_attention": False, "use_linear_projection": False}
    args = dit_init_args(config, "DiT-XL-2-256")
    assert {k: args[k] for k in DIT_PRESETS["XL/2"]} == DIT_PRESETS["XL/2"]
    assert (args["in_channels"], args["out_channels"], args["input_size"], args["num_classes"]) == (4, 8, 32, 1000)
    assert args["mlp_norm_eps"] == 1e-5  # diffusers' default norm_eps, where the original DiT has 1e-6


def dit_train_py_checkpoint(state: dict, ema: dict) -> dict:
    """What facebookresearch/DiT's train.py saves every ckpt_every steps: {"model", "ema", "opt", "args"}, with
    AdamW(lr=1e-4, weight_decay=0) after a step and the argparse.Namespace of its command line."""
    import argparse

    params = [v.clone().float().requires_grad_() for k, v in state.items() if k != "pos_embed"]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
    sum(p.sum() for p in params).backward()
    opt.step()
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-path", type=str, required=True)
    parser.add_argument("--results-dir", type=str, default="results")
    parser.add_argument("--model", type=str, default="DiT-XL/2")
    parser.add_argument("--image-size", type=int, choices=[256, 512], default=256)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1400)
    parser.add_argument("--global-batch-size", type=int, default=256)
    parser.add_argument("--global-seed", type=int, default=0)
    parser.add_argument("--vae", type=str, choices=["ema", "mse"], default="ema")
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--ckpt-every", type=int, default=50_000)
    args = parser.parse_args(["--data-path", "/data/imagenet/train"])
    return {"model": state, "ema": ema, "opt": opt.state_dict(), "args": args}


def test_a_checkpoint_written_as_dit_train_py_does_imports_its_ema(tmp_path):
    """Before: torch.load(weights_only=True) refused the argparse.Namespace under "args" (nothing imported)."""
    state = original_dit_state(tiny_dit(norm_eps=1e-6))
    ema = {k: v - 0.5 for k, v in state.items()}
    ema["pos_embed"] = state["pos_embed"]
    torch.save(dit_train_py_checkpoint(state, ema), tmp_path / "0050000.pt")
    weights = import_dit_pt(tmp_path / "0050000.pt", num_heads=2).weights
    assert (weights["patch_embed.weight"] - ema["x_embedder.proj.weight"]).abs().max() == 0
    assert (weights["blocks.0.attn.qkv.weight"] - ema["blocks.0.attn.qkv.weight"]).abs().max() == 0


class NotAnArgparseNamespace:
    """Any other class pickled into a checkpoint (a user's config object)."""


def test_a_checkpoint_holding_other_pickled_objects_is_refused_with_what_to_do(tmp_path):
    state = original_dit_state(tiny_dit(norm_eps=1e-6))
    checkpoint = dit_train_py_checkpoint(state, state)
    checkpoint["args"] = NotAnArgparseNamespace()
    torch.save(checkpoint, tmp_path / "other.pt")
    with pytest.raises(WrongCheckpoint, match=r"NotAnArgparseNamespace\); .*re-save the weights alone") as caught:
        import_dit_pt(tmp_path / "other.pt", num_heads=2)
    assert "\n" not in str(caught.value)
    # the Namespace is allowed for that one load only, not process-wide
    import argparse
    assert argparse.Namespace not in torch.serialization.get_safe_globals()
