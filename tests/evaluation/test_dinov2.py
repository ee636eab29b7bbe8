"""FD_DINOv2's plumbing with a randomly initialised small DINOv2 ViT (no real weights here): the weights come from
a local file, images reach the network as EDM2 feeds it, the metric is chosen by name, and without weights it is
refused with what to set."""
import pytest
import torch

from lit_diffusion.evaluation.dinov2 import IMAGENET_MEAN, IMAGENET_STD, WEIGHTS_ENV, DINOv2Features
from lit_diffusion.evaluation.metric import Reference, Samples
from lit_diffusion.evaluation.metric_registry import make_metrics, metric_names
from lit_diffusion.evaluation.reference import reference_from_features

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random ViT-S/14 DINOv2 state dict at its training resolution (518: a 37x37 position grid), as a file."""
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vits14_random.pth"
    torch.save(model.state_dict(), path)
    return path


def test_features_of_grey_and_rgb_images_of_any_size(weights):
    net = DINOv2Features(weights)
    assert net.name == "dinov2-vit_small_patch14_dinov2" and net.num_features == 384 and net.num_classes == 0
    assert net.fingerprint.startswith(net.name) and len(net.weights_sha256) == 64 and "224x224" in net.resize
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    f, logits = net.features_and_logits(x)
    assert f.shape == (3, 384) and logits.shape == (3, 0) and torch.isfinite(f).all()
    assert torch.equal(f, net.features(x))  # deterministic (eval mode, no dropout)
    grey = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.allclose(net.features(grey), net.features(grey.expand(-1, 3, -1, -1)))


def test_input_is_224_and_imagenet_normalised(weights):
    net = DINOv2Features(weights)
    x = torch.full((1, 3, 20, 20), 0.0)  # 8-bit value 128 everywhere (the project's quantisation of 0.0)
    u = torch.round((x + 1) * 127.5).clamp(0, 255)[0, 0, 0, 0]
    got = net.network_input(x)
    assert got.shape == (1, 3, 224, 224)
    expected = (u / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(got[0, :, 100, 100], expected, atol=1e-5)


def test_fd_dinov2_by_name_from_the_environment(weights, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    suite_net = DINOv2Features(weights)  # stands in for the suite's feature network
    fd, fd_dinov2 = make_metrics(["fd", "fd_dinov2"], suite_net)
    assert (fd_dinov2.name, fd_dinov2.label) == ("fd_dinov2", "FD_DINOv2")
    assert fd_dinov2.fingerprint != fd.fingerprint and fd_dinov2.feature_net.fingerprint in fd_dinov2.fingerprint
    g = torch.Generator().manual_seed(1)
    real = torch.rand(40, 3, 16, 16, generator=g) * 2 - 1
    net = fd_dinov2.feature_net
    reference = Reference.of(net, reference_from_features(net, net.features(real), "random", "train"))
    same = fd_dinov2.compute(Samples(real), reference).value
    other = fd_dinov2.compute(Samples(torch.zeros(40, 3, 16, 16)), reference).value
    assert abs(same) < other / 100  # the reference itself scores ~0; other images do not (random features are small)


def test_refused_without_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(ValueError, match=f"set {WEIGHTS_ENV}") as error:
        make_metrics(["fd_dinov2"], None)
    assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        DINOv2Features(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=f"set {WEIGHTS_ENV}"):
        metric_names(["fd", "fd_dinov2"])  # checked by name, before a comparison trains anything
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth: no such file"):
        metric_names(["fd_dinov2"])
    with pytest.raises(ValueError, match="must be distinct names among"):
        make_metrics(["fd", "fid_typo"], None)
