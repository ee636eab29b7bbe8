"""DINOv2 as a feature network: the space of FD_DINOv2, the metric EDM2 reports beside FID (Karras et al. 2024,
"Analyzing and Improving the Training Dynamics of Diffusion Models", sec. 5, following Stein et al. 2023,
"Exposing flaws of generative model evaluation metrics").

Architecture: timm's DINOv2 ViT (``vit_large_patch14_dinov2`` for ViT-L/14, the network EDM2 uses; the size is read
from the weights, so the small, base and giant ViTs load too), built with ``pretrained=False``. Weights: a local
file the user gives (``LIT_DIFFUSION_DINOV2_WEIGHTS`` or ``weights_path``): the state dict of facebookresearch's
``dinov2_vitl14_pretrain.pth`` or of timm's ``vit_large_patch14_dinov2.lvd142m``; nothing is downloaded. Features:
the class token after the final norm (what DINOv2's own forward returns), 1024-d for ViT-L.

Preprocessing as EDM2's ``calculate_metrics.py`` (``DINOv2Detector``, resize_mode "torch"): 8-bit images resized
to 224x224 with antialiased bicubic interpolation, divided by 255 and normalised with the ImageNet mean and std.
The positional embedding (trained at 518x518, a 37x37 grid) is resampled once to the 16x16 grid of a 224 input,
bicubic without antialiasing as DINOv2 does per call (DINOv2 adds a 0.1 offset to the scale factor, so values can
differ from EDM2's in the last digits)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from lit_diffusion.data.dataset_json import file_sha256

from .feature_network import FeatureNetwork, check_images, to_uint8_range

WEIGHTS_ENV = "LIT_DIFFUSION_DINOV2_WEIGHTS"
ARCHITECTURES = {384: "vit_small_patch14_dinov2", 768: "vit_base_patch14_dinov2", 1024: "vit_large_patch14_dinov2",
                 1536: "vit_giant_patch14_dinov2"}  # embedding width -> timm architecture
INPUT_SIZE = 224
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESIZE = ("EDM2 DINOv2: 8-bit quantise, bicubic (antialiased) to 224x224, /255, ImageNet mean (0.485, 0.456, 0.406) "
          "and std (0.229, 0.224, 0.225)")
NO_WEIGHTS = (f"fd_dinov2 needs DINOv2 weights and never downloads them: set {WEIGHTS_ENV} (or pass weights_path) to "
              "a local state-dict file of DINOv2 ViT-L/14 (dinov2_vitl14_pretrain.pth or timm's "
              "vit_large_patch14_dinov2.lvd142m)")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def weights_from_environment() -> Path:
    """The file ``$LIT_DIFFUSION_DINOV2_WEIGHTS`` names; refused with what to set when unset or missing (checked
    before a comparison trains anything)."""
    value = os.environ.get(WEIGHTS_ENV)
    if not value:
        raise ValueError(NO_WEIGHTS)
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file ({NO_WEIGHTS})")
    return path


class DINOv2Features(FeatureNetwork):
    """DINOv2 ViT class-token features (B, D) of 1- or 3-channel images of any size; no logits (B, 0)."""

    num_classes = 0
    resize = RESIZE

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device | None = None):
        super().__init__()
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn

        if weights_path is None:
            raise ValueError(NO_WEIGHTS)
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file ({NO_WEIGHTS})")
        state = load_state_dict(path)
        width = int(state["cls_token"].shape[-1]) if "cls_token" in state else None
        if width not in ARCHITECTURES:
            raise ValueError(f"{path}: not a DINOv2 ViT state dict (class token width {width}, expected one of "
                             f"{sorted(ARCHITECTURES)})")
        arch = ARCHITECTURES[width]
        self.model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=INPUT_SIZE)
        self.model.load_state_dict(checkpoint_filter_fn(state, self.model, antialias=False), strict=True)
        self.model.requires_grad_(False)
        self.name, self.num_features, self.weights_path = f"dinov2-{arch}", width, path
        self._sha256 = file_sha256(path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if device is not None:
            self.to(device)
        self.eval()

    @classmethod
    def from_environment(cls, device: str | torch.device | None = None) -> "DINOv2Features":
        """The network whose weights ``$LIT_DIFFUSION_DINOV2_WEIGHTS`` names (refused with what to set if unset)."""
        return cls(weights_from_environment(), device=device)

    def train(self, mode: bool = True) -> "DINOv2Features":
        return super().train(False)  # a metric network never leaves eval mode

    @property
    def fingerprint(self) -> str:
        return f"{self.name}-{self._sha256[:16]}"

    @property
    def weights_sha256(self) -> str:
        return self._sha256

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> (B, 3, 224, 224), normalised as EDM2 feeds DINOv2."""
        u = to_uint8_range(check_images(x, "DINOv2Features", (1, 3)).to(self.device))
        if u.shape[1] == 1:
            u = u.expand(-1, 3, -1, -1)
        u = F.interpolate(u, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True)
        return (u / 255 - self.mean) / self.std

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = check_images(x, "DINOv2Features", (1, 3))
        with torch.no_grad():
            f = torch.cat([self.model(self.network_input(part)) for part in x.split(64)])  # (B, D) class token
        return f.float(), f.new_zeros(f.shape[0], 0)
