"""Real data: MNIST (IDX) and CIFAR-10 (JPEG ImageFolder) written to shards and read back.

Uses the datasets in $LIT_DIFFUSION_SHARED_DATA (default: shared/data beside the repository);
skipped with a reason when they are absent.
"""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.data.dataset_json import read_dataset_json
from lit_diffusion.data.datamodule import ShardDataModule

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Invert the reader's u / 127.5 - 1."""
    return ((x + 1) * 127.5).round().to(torch.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_shards_are_pixel_exact_against_torchvision(mnist_root, mnist_shards, split):
    from torchvision.datasets import MNIST

    ref = MNIST(str(mnist_root), train=split == "train", download=False)
    info = read_dataset_json(mnist_shards[split])
    assert (info.num_samples, info.shape, info.format) == (len(ref), [1, 28, 28], "png")
    assert info.class_names == ref.classes and info.num_classes == 10
    dm = ShardDataModule(str(mnist_shards[split]), batch_size=1000, num_workers=2, shuffle_buffer=2000, seed=3)
    assert dm.steps_per_epoch == len(ref) // 1000
    seen = torch.zeros(len(ref), dtype=torch.int64)
    for batch in dm.train_dataloader():
        index = torch.tensor([int(k) for k in batch["key"]])  # key = index in the IDX file
        assert torch.equal(to_uint8(batch["x"])[:, 0], ref.data[index])
        assert torch.equal(batch["label"], ref.targets[index])
        seen[index] += 1
    assert torch.all(seen == 1)
    expected_mean = ref.data.double().mean().item() / 255
    assert info.mean[0] == pytest.approx(expected_mean, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("split,count", [("train", 50_000), ("test", 10_000)])
def test_cifar10_jpeg_imagefolder_builds_and_reads_back(cifar_jpegs, cifar_shards, split, count):
    from torchvision.datasets import ImageFolder

    from lit_diffusion.data.imagecodec import torchvision_decoder

    ref = ImageFolder(str(cifar_jpegs / split))
    info = read_dataset_json(cifar_shards[split])
    assert (info.num_samples, info.shape, info.format) == (count, [3, 32, 32], "jpg")
    assert info.class_names == CIFAR10_CLASSES == ref.classes
    if split == "train":  # the README's statistics of these JPEGs
        assert info.mean == pytest.approx([0.4913, 0.4821, 0.4465], abs=2e-4)
        assert info.std[0] == pytest.approx(0.2452, abs=2e-4)
    dm = ShardDataModule(str(cifar_shards[split]), batch_size=500, num_workers=2, hflip=False)
    per_class = torch.zeros(10, dtype=torch.int64)
    keys = set()
    decode = torchvision_decoder()
    for i, batch in enumerate(dm.train_dataloader()):
        per_class += torch.bincount(batch["label"], minlength=10)
        keys.update(batch["key"])
        pixels = to_uint8(batch["x"])
        for j in range(0, len(pixels), 50 if i % 10 else 1):  # all of every 10th batch, else every 50th
            path, ref_label = ref.samples[int(batch["key"][j])]  # key = index in ImageFolder's file list
            assert batch["label"][j] == ref_label
            with open(path, "rb") as f:
                assert torch.equal(pixels[j], decode(f.read()))
    assert len(keys) == count
    assert per_class.tolist() == [count // 10] * 10


def test_the_fast_decoder_pickles_for_spawned_workers():
    """DataLoader workers started by spawn/forkserver receive the decoder by pickle."""
    import io
    import pickle

    from PIL import Image

    from lit_diffusion.data.imagecodec import torchvision_decoder

    decode = torchvision_decoder()
    if decode is None:
        pytest.skip("torchvision's image decoding op is unavailable here")
    png = io.BytesIO()
    Image.fromarray(torch.arange(48, dtype=torch.uint8).reshape(6, 8).numpy()).save(png, format="PNG")
    assert torch.equal(pickle.loads(pickle.dumps(decode))(png.getvalue()), decode(png.getvalue()))
    assert decode(png.getvalue()).shape == (1, 6, 8)
