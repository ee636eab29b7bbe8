"""The shared backbone contract, for every backbone: shapes, time and label handling, errors,
block_class, initialize_weights, activation checkpointing, bf16 autocast and torch.compile."""
import pytest
import torch
from backbone_utils import batch, debug_dit, debug_unet, perturb

from lit_diffusion.backbones import DIT_PRESETS, MLP, UNET_PRESETS, DiT, UNet

BUILDERS = {"dit": debug_dit, "unet": debug_unet}
SHAPES = [(1, 28, 28), (3, 32, 32), (4, 32, 32), (3, 8, 8), (2, 16, 24)]


@pytest.mark.parametrize("name", sorted(DIT_PRESETS))
def test_every_dit_preset_keeps_shape(name):
    with torch.device("meta"):  # shapes only: the big presets cost nothing on the meta device
        model = DiT.from_preset(name, in_channels=4, input_size=32, num_classes=1000)
        x = torch.randn(2, 4, 32, 32)
        assert model(x, torch.rand(2), torch.tensor([3, 1000])).shape == x.shape


@pytest.mark.parametrize("shape", [(4, 32, 32), (3, 64, 64), (1, 16, 24)])
def test_dit_declared_output_channels_and_resolutions(shape):
    with torch.device("meta"):
        model = DiT.from_preset("S/8", in_channels=shape[0], input_size=shape[1:], out_channels=2 * shape[0])
        assert model(torch.randn(2, *shape), torch.rand(2)).shape == (2, 2 * shape[0], *shape[1:])


@pytest.mark.parametrize("name", sorted(UNET_PRESETS))
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 64, 64), (4, 32, 48)])
def test_every_unet_preset_keeps_shape(name, shape):
    with torch.device("meta"):
        model = UNet.from_preset(name, in_channels=shape[0], num_classes=10)
        x = torch.randn(2, *shape)
        assert model(x, torch.rand(2), torch.tensor([3, 10])).shape == x.shape


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("shape", SHAPES)
def test_debug_forward_on_real_inputs(kind, shape):
    kwargs = {"size": shape[1:]} if kind == "dit" else {}
    model = perturb(BUILDERS[kind](in_channels=shape[0], out_channels=2 * shape[0], **kwargs))
    x, t, cond = batch(shape[0], shape[1:], n=2)
    out = model(x, t, cond)
    assert out.shape == (2, 2 * shape[0], *shape[1:]) and out.dtype == x.dtype and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_time_and_label_handling(kind):
    model = perturb(BUILDERS[kind]()).eval()
    x, _, _ = batch(n=2)
    labels = torch.tensor([2, 7])
    t = torch.tensor(0.3)
    torch.testing.assert_close(model(x, t, labels), model(x, t.expand(2), labels))  # 0-dim t broadcasts
    torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([10, 10])))  # None = null class
    assert not torch.allclose(model(x, t, labels), model(x, t, torch.tensor([5, 5])))  # labels matter
    assert not torch.allclose(model(x, t, labels), model(x, torch.tensor(0.7), labels))  # time matters


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_bad_inputs_fail_loudly(kind):
    model = BUILDERS[kind]()
    x, t, cond = batch(n=2)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(2, 4, 8, 8), t, cond)
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        model(x, torch.rand(3), cond)
    with pytest.raises(ValueError, match="integer class tensor"):
        model(x, t, cond.float())
    with pytest.raises(ValueError, match="num_classes=0"):
        BUILDERS[kind](num_classes=0)(x, t, cond)


@pytest.mark.parametrize("cls", [DiT, UNet])
def test_unknown_preset_names_the_allowed_ones(cls):
    with pytest.raises(ValueError, match=r"unknown .* preset 'huge'; choose one of \[.*'debug'"):
        cls.from_preset("huge")


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_block_class_and_single_initialisation(kind):
    model = BUILDERS[kind]()
    blocks = [m for m in model.modules() if isinstance(m, type(model).block_class)]
    assert len(blocks) == (2 if kind == "dit" else 8)  # UNet debug: 2 down, 2 mid, 4 up
    x, t, cond = batch()
    perturb(model)
    assert model(x, t, cond).abs().max() > 0
    model.initialize_weights()
    assert torch.equal(model(x, t, cond), torch.zeros_like(x))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_meta_init_then_materialise(kind):
    with torch.device("meta"):
        model = BUILDERS[kind]()
    model.to_empty(device="cpu")
    model.initialize_weights()
    reference = BUILDERS[kind]()
    x, t, cond = batch()
    assert torch.equal(model(x, t, cond), torch.zeros_like(x))
    if kind == "dit":
        torch.testing.assert_close(model.pos_embed, reference.pos_embed)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_activation_checkpointing_recomputes_blocks_with_same_result(kind):
    x, t, cond = batch()
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = perturb(BUILDERS[kind](activation_checkpointing=checkpointing, dropout=0.0) if kind == "unet"
                        else BUILDERS[kind](activation_checkpointing=checkpointing))
        calls = []
        first_block = next(m for m in model.modules() if isinstance(m, type(model).block_class))
        first_block.register_forward_pre_hook(lambda *_: calls.append(1))
        model(x, t, cond).square().mean().backward()
        results.append(([p.grad for p in model.parameters()], len(calls)))
    (grads_plain, calls_plain), (grads_ckpt, calls_ckpt) = results
    assert (calls_plain, calls_ckpt) == (1, 2)  # the checkpointed block runs again in the backward pass
    for g_plain, g_ckpt in zip(grads_plain, grads_ckpt):
        torch.testing.assert_close(g_plain, g_ckpt)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_bf16_autocast(kind):
    model = perturb(BUILDERS[kind]()).eval()
    x, t, cond = batch()
    reference = model(x, t, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, cond)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - reference).norm() / reference.norm() < 0.05


@pytest.mark.parametrize(("kind", "checkpointing"), [("dit", False), ("dit", True), ("unet", False)])
def test_compiles_without_graph_breaks(kind, checkpointing):
    torch._dynamo.reset()
    model = perturb(BUILDERS[kind](activation_checkpointing=checkpointing))
    if kind == "unet":
        model.eval()  # dropout draws differ between eager and compiled runs
    x, t, cond = batch()
    # fullgraph=True raises on any graph break; aot_eager also traces the backward without a C++ compiler
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x, t, cond)
    torch.testing.assert_close(out, model(x, t, cond))
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert compiled(x, torch.tensor(0.5)).shape == x.shape  # 0-dim t, cond=None


def test_mlp_follows_the_contract():
    model = perturb(MLP(dim=2, width=32, depth=2, num_classes=3))
    x = torch.randn(5, 2)
    assert model(x, torch.rand(5), torch.tensor([0, 1, 2, 3, 3])).shape == x.shape
    torch.testing.assert_close(model(x, torch.tensor(0.2)), model(x, torch.full((5,), 0.2), torch.full((5,), 3)))
    assert MLP.block_class.__name__ == "MLPBlock"
