"""A diffusers UNet2DModel in the DDPM layout (google/ddpm-cifar10-32's, smaller) imported as the project U-Net
computes diffusers' function: the same output to 1e-5 in float32, and the same DDIM sampling loop as diffusers'
DDIMPipeline on the same noise."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
from tiny_published import UNET_DDPM, project_grid, save_pipeline, tiny_unet  # noqa: E402

from lit_diffusion.published import build_module, import_diffusers  # noqa: E402
from lit_diffusion.published.keys import WrongCheckpoint  # noqa: E402
from lit_diffusion.samplers import sample_ddim  # noqa: E402


def imported(model, tmp_path, scheduler=None):
    from diffusers import DDPMScheduler

    save_pipeline(model, scheduler or DDPMScheduler(), tmp_path / "pipe", "unet")
    return build_module(import_diffusers(str(tmp_path / "pipe")))


@pytest.mark.parametrize("overrides", [{}, {"attention_head_dim": 16, "flip_sin_to_cos": True,
                                            "freq_shift": 0, "downsample_padding": 1}],
                         ids=["ddpm-layout", "other-options"])
def test_imported_unet_output_equals_diffusers(tmp_path, overrides):
    reference = tiny_unet(**overrides)
    module = imported(reference, tmp_path)
    spec = module.model_spec["backbone"]["init_args"]
    if not overrides:  # Ho et al.'s function: right-bottom padding, sin-first features, 0-based index
        assert (spec["downsample_padding"], spec["time_embedding"], spec["time_shift"]) == ("right_bottom", "ho", -1.0)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    k = torch.tensor([0, 417, 999])
    with torch.no_grad():
        expected = reference(x, k).sample
        got = module.ema.shadow(x, (k + 1) / 1000.0)
    assert expected.abs().max() > 0.1  # a random diffusers U-Net: the comparison is not of zeros
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_old_diffusers_attention_names_are_read(tmp_path):
    """google/ddpm-cifar10-32 was saved by an early diffusers: attention weights named query/key/value/proj_attn."""
    from safetensors.torch import load_file, save_file

    reference = tiny_unet()
    reference.save_pretrained(tmp_path / "unet")
    file = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    new_to_old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state = {}
    for key, value in load_file(str(file)).items():
        for new, old in new_to_old.items():
            key = key.replace(f".{new}.", f".{old}.") if ".attentions." in key else key
        state[key] = value
    assert any(".query." in k for k in state)
    save_file(state, str(file))
    module = build_module(import_diffusers(str(tmp_path / "unet")))
    x, k = torch.randn(2, 3, 16, 16), torch.tensor([5, 700])
    with torch.no_grad():
        torch.testing.assert_close(module.ema.shadow(x, (k + 1) / 1000.0), reference(x, k).sample, atol=1e-5, rtol=0)


def test_ddim_loop_equals_diffusers_ddim_pipeline(tmp_path):
    """DDIMPipeline (eta 0, 10 steps, no clipping) vs the project's DDIM sampler on the diffusers timesteps
    (t = (k + 1) / 1000, then 0), from the same initial noise. Tolerance 1e-4 on images in [0, 1]: the networks
    agree to ~1e-6 per call, but diffusers keeps alphas_cumprod in float32 and the project its schedule in
    float64, and the differences compound over the 10 steps of an untrained (non-contracting) network
    (measured: 1.2e-5 at 10 steps, 1.5e-5 at 50)."""
    from diffusers import DDIMPipeline, DDIMScheduler

    reference = tiny_unet()
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    module = imported(reference, tmp_path, scheduler)
    pipe = DDIMPipeline(unet=reference, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(batch_size=2, generator=torch.Generator().manual_seed(3), eta=0.0, num_inference_steps=10,
                    output_type="np").images  # (B, H, W, C) in [0, 1]
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    grid = project_grid(pipe.scheduler.timesteps)  # the pipeline holds its own copy of the scheduler
    assert grid[0] == 0.901 and len(grid) == 11
    out = sample_ddim(module.objective.path, module.objective.predictor(module.ema.shadow), noise, grid)
    assert out.nfe == 10
    got = (out.x0 / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert abs(got - expected).max() < 1e-4


def test_a_class_conditional_unet_is_refused_with_the_setting_named(tmp_path):
    reference = tiny_unet(num_class_embeds=4)
    reference.save_pretrained(tmp_path / "unet")
    with pytest.raises(WrongCheckpoint, match="num_class_embeds=4"):
        import_diffusers(str(tmp_path / "unet"))


def test_the_ddpm_cifar10_layout_maps_onto_the_preset():
    """google/ddpm-cifar10-32's config (its published values) gives the project's ddpm-cifar10 preset exactly."""
    from lit_diffusion.backbones.presets import UNET_PRESETS
    from lit_diffusion.published.unet_diffusers import unet_init_args

    config = {**UNET_DDPM, "_class_name": "UNet2DModel", "sample_size": 32, "block_out_channels": [128, 256, 256, 256],
              "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
              "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], "layers_per_block": 2,
              "norm_num_groups": 32, "dropout": 0.1}
    args = unet_init_args(config, "cifar10")
    preset = UNET_PRESETS["ddpm-cifar10"]
    for key, value in preset.items():
        assert args[key] == (list(value) if isinstance(value, tuple) else value), key


def test_early_hub_layout_reads_the_scheduler_beside_the_model(tmp_path):
    """Early diffusers hub repos keep config.json, the weights and scheduler_config.json in one folder."""
    from diffusers import DDPMScheduler

    tiny_unet().save_pretrained(tmp_path / "repo")
    DDPMScheduler(variance_type="fixed_large", prediction_type="v_prediction").save_pretrained(tmp_path / "repo")
    (tmp_path / "repo" / "model_index.json").write_text('{"_class_name": "DDPMPipeline"}')
    objective = import_diffusers(str(tmp_path / "repo")).objective["init_args"]
    assert (objective["variance"], objective["prediction"]) == ("fixed_large", "v")
    with pytest.raises(WrongCheckpoint, match="beta_schedule='scaled_linear'"):
        DDPMScheduler(beta_schedule="scaled_linear").save_pretrained(tmp_path / "repo")
        import_diffusers(str(tmp_path / "repo"))
