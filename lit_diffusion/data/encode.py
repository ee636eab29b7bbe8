"""Writer side: turn one source :class:`Item` into shard members, with its statistics and digest.

Runs in the writer's worker processes. Encoded png/jpg files are copied byte for byte when they
already have the dataset's mode, size and format; otherwise the image is center-cropped,
resized and re-encoded. Statistics are exact per-channel sums (pixels scaled to [0, 1]).
"""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import BuildError
from .imagecodec import torchvision_decoder
from .sources import Item, encode_npy

RESIZE_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class EncodeOptions:
    """Per-sample encoding options, resolved (no "auto" left) before the workers start."""

    image_format: str = "png"  # "png" | "jpg" for images; ignored for tensors
    mode: str = "L"  # PIL mode of every image: "L" (grey) or "RGB"
    convert_mode: bool = False  # convert images of another mode (--mode given) instead of failing
    resolution: int | None = None  # center-crop to a square, resize to resolution x resolution
    resize_filter: str = "lanczos"
    jpeg_quality: int = 95
    png_compress_level: int = 6

    def __post_init__(self):
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {self.image_format!r}")
        if self.mode not in ("L", "RGB"):
            raise ValueError(f"mode must be 'L' or 'RGB', got {self.mode!r}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"resize_filter must be one of {sorted(RESIZE_FILTERS)}, got {self.resize_filter!r}")
        if self.resolution is not None and self.resolution <= 0:
            raise ValueError(f"resolution must be positive, got {self.resolution}")


@dataclass
class Encoded:
    key: str
    members: tuple[str, ...]  # member extensions, in tar order
    blob: bytes  # the members as tar records (headers + padded data), ready to append to a shard
    shape: tuple[int, ...]
    sums: np.ndarray  # per-channel sum of values (float64)
    sumsq: np.ndarray  # per-channel sum of squared values
    count: int  # values per channel
    digest: bytes  # sha256 of key and members
    origin: str


def center_crop_resize(im: Image.Image, resolution: int | None, resize_filter: str) -> Image.Image:
    """Center-crop to the largest square and resize to ``resolution`` (no-op if already that size)."""
    if resolution is None:
        return im
    w, h = im.size
    if (w, h) == (resolution, resolution):
        return im
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    if (w, h) != (s, s):
        im = im.crop((left, top, left + s, top + s))
    if s != resolution:
        im = im.resize((resolution, resolution), RESIZE_FILTERS[resize_filter])
    return im


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(pixels: np.ndarray, level: int = 6) -> bytes:
    """A PNG of a uint8 HxW (grey) or HxWx3 (RGB) array; about 3x faster than PIL's encoder.

    Rows use filter 0 (None) for grey and 1 (Sub) for RGB: the smaller files on MNIST-like and
    photographic images respectively (PNG spec, section 9).
    """
    h, w = pixels.shape[:2]
    c = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(h, w * c)
    raw = np.empty((h, 1 + w * c), dtype=np.uint8)
    if c == 1:
        raw[:, 0], raw[:, 1:] = 0, rows
    else:
        raw[:, 0], raw[:, 1:1 + c] = 1, rows[:, :c]
        np.subtract(rows[:, c:], rows[:, :-c], out=raw[:, 1 + c:])  # wraps modulo 256
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _png_chunk(b"IEND", b""))


def encode_image(im: Image.Image, fmt: str, opts: EncodeOptions) -> bytes:
    if fmt == "png":
        return png_bytes(np.asarray(im), opts.png_compress_level)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=opts.jpeg_quality)
    return buf.getvalue()


def tar_record(name: str, data: bytes) -> bytes:
    """One regular-file member in ustar format (mode 0444, uid/gid 0, mtime 0), padded to 512."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"member name {name!r} longer than 100 bytes")
    header = bytearray(512)
    header[0:len(encoded)] = encoded
    header[100:108] = b"0000444\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % len(data)
    header[136:148] = b"%011o\0" % 0
    header[148:156] = b" " * 8
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + data + bytes(-len(data) % 512)


def _image_of(item: Item) -> Image.Image:
    if item.image is not None:
        return Image.fromarray(item.image)
    try:
        im = Image.open(io.BytesIO(item.image_bytes))
        im.load()
    except Exception as e:  # PIL raises many types for bad files
        raise BuildError(f"{item.origin}: cannot decode image: {e} (imagefolder: --skip-bad leaves such files "
                         f"out)") from None
    return im


def _encode_pixels(pixels: np.ndarray, fmt: str, opts: EncodeOptions) -> bytes:
    if fmt == "png":
        return png_bytes(pixels, opts.png_compress_level)
    return encode_image(Image.fromarray(pixels), fmt, opts)


def _fast_decode(data: bytes) -> np.ndarray | None:
    """uint8 HxW / HxWx3 pixels via torchvision's decoder (3x faster than PIL), None if it can't."""
    decode = torchvision_decoder()
    if decode is None:
        return None
    try:
        x = decode(data)
    except Exception:  # let PIL decode it and report the problem
        return None
    if x.shape[0] not in (1, 3):
        return None
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _process_image(item: Item, opts: EncodeOptions) -> tuple[bytes, np.ndarray]:
    """(encoded bytes, uint8 HxW or HxWxC pixels as stored)."""
    pixels = item.image if item.image is not None else _fast_decode(item.image_bytes)
    if pixels is not None:  # skip PIL unless something must change
        mode = "L" if pixels.ndim == 2 else "RGB"
        size_ok = opts.resolution is None or pixels.shape[:2] == (opts.resolution, opts.resolution)
        if mode == opts.mode and size_ok:
            if item.image_bytes is not None and item.ext == opts.image_format:
                return item.image_bytes, pixels  # copy, no re-encode
            return _encode_pixels(pixels, opts.image_format, opts), pixels
    im = _image_of(item)
    changed = item.image_bytes is None
    if im.mode != opts.mode:
        if not opts.convert_mode:
            raise BuildError(f"{item.origin}: image mode {im.mode!r} differs from the dataset mode "
                             f"{opts.mode!r} (taken from the first image); pass --mode L or --mode RGB "
                             f"to convert every image")
        im, changed = im.convert(opts.mode), True
    resized = center_crop_resize(im, opts.resolution, opts.resize_filter)
    changed |= resized is not im
    pixels = np.asarray(resized)
    if not changed and item.ext == opts.image_format:
        return item.image_bytes, pixels  # copy, no re-encode
    return _encode_pixels(pixels, opts.image_format, opts), pixels


def _image_stats(pixels: np.ndarray):
    """Exact per-channel sums of uint8 pixels (HxWxC), scaled to [0, 1]."""
    v = np.ascontiguousarray(pixels.reshape(-1, pixels.shape[2]).T).astype(np.int64)  # (C, H*W)
    sums, sumsq = v.sum(axis=1), np.einsum("ij,ij->i", v, v)
    return sums / 255.0, sumsq / (255.0 * 255.0), v.shape[1]


def _channel_stats(values: np.ndarray, channel_axis: int | None):
    """Sums per channel: ``channel_axis`` None means one channel over all values."""
    v = values.astype(np.float64)
    if channel_axis is None:
        v = v.reshape(1, -1)
    else:
        v = np.moveaxis(v, channel_axis, 0).reshape(v.shape[channel_axis], -1)
    return v.sum(axis=1), np.square(v).sum(axis=1), v.shape[1]


def encode_item(key: str, item: Item, opts: EncodeOptions) -> Encoded:
    members: dict[str, bytes] = {}
    if item.image is not None or item.image_bytes is not None:
        data, pixels = _process_image(item, opts)
        members[opts.image_format] = data
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        shape = (pixels.shape[2], pixels.shape[0], pixels.shape[1])
        sums, sumsq, count = _image_stats(pixels)
    elif item.array is not None or item.target is not None:
        value = item.array if item.array is not None else item.target
        if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
            raise BuildError(f"{item.origin}: tensors must be real numbers, got dtype {value.dtype}")
        if not np.all(np.isfinite(value)):
            raise BuildError(f"{item.origin}: tensor holds NaN or inf values")
        if item.array is not None:
            members["npy"] = encode_npy(value)
        else:
            members["noise.npy"] = encode_npy(item.noise)
            members["target.npy"] = encode_npy(item.target)
        shape = tuple(value.shape)
        sums, sumsq, count = _channel_stats(value, 0 if value.ndim == 3 else None)
    else:
        raise BuildError(f"{item.origin}: empty item")
    if item.label is not None:
        members["cls"] = str(int(item.label)).encode()
    h = hashlib.sha256(key.encode())
    for ext, data in members.items():
        h.update(f"\0{ext}\0{len(data)}\0".encode())
        h.update(data)
    blob = b"".join(tar_record(f"{key}.{ext}", data) for ext, data in members.items())
    return Encoded(key, tuple(members), blob, shape, sums, sumsq, count, h.digest(), item.origin)
