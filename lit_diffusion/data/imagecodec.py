"""Fast image decoding through torchvision's registered ``image::decode_image`` op.

torchvision 0.29 deprecates its Python image-codec functions (TorchCodec supersedes them) and
warns on every call; the op underneath is the same libjpeg-turbo/libpng decoder, about 3x faster
than PIL on small images. When it is missing, callers fall back to PIL.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable

log = logging.getLogger("lit_diffusion.data")


@functools.cache
def torchvision_decoder() -> Callable | None:
    """``f(data: bytes) -> uint8 Tensor (C, H, W)`` (channels as stored), or None if unavailable."""
    try:
        import torch
        import torchvision.io  # noqa: F401  (loads the image extension and registers the op)

        op = torch.ops.image.decode_image
        unchanged = torchvision.io.ImageReadMode.UNCHANGED.value
    except (ImportError, AttributeError, RuntimeError) as e:
        log.warning("torchvision image decoding unavailable (%s); decoding with PIL", e)
        return None

    def decode(data: bytes):
        return op(torch.frombuffer(bytearray(data), dtype=torch.uint8), unchanged, False)

    return decode
