"""ImageFolder source: ``root/<class>/<image>.png|jpg`` (labeled) or ``root/<image>`` (unlabeled).

Classes are the sorted sub-folder names and files are sorted within a class, as torchvision's
ImageFolder does, so label ids agree with it. Files are read as bytes in the writer's worker
processes; png/jpg bytes are copied into the shards unchanged unless a resize or a mode
conversion forces a re-encode.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import BuildError
from .sources import Item, Source

log = logging.getLogger("lit_diffusion.data")

IMAGE_EXTENSIONS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg"}


def _images_in(folder: Path) -> tuple[list[str], list[str]]:
    """Sorted image file names directly in ``folder`` and the names of the other files (ignored)."""
    images, ignored = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if not entry.is_file():
                continue
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(entry.name)
            else:
                ignored.append(entry.name)
    return sorted(images), sorted(ignored)


def _unreadable(path: Path) -> str | None:
    """Why the image at ``path`` cannot be decoded, or None when it can."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # a full decode: truncated files pass Image.open and fail here
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ...
        return f"{type(e).__name__}: {e}"
    return None


def _named(names: list[str], at_most: int = 5) -> str:
    return ", ".join(names[:at_most]) + (f" and {len(names) - at_most} more" if len(names) > at_most else "")


class ImageFolderSource(Source):
    name = "imagefolder"

    def __init__(self, root: str | Path, skip_bad: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise BuildError(f"imagefolder: {root} is not a folder")
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        top_images, ignored = _images_in(root)
        ignored = list(ignored)
        files: list[str] = []
        labels: list[int] = []
        if classes:
            if top_images:
                raise BuildError(f"imagefolder: {root} holds both class sub-folders {classes[:3]}... and "
                                 f"images at its top level ({top_images[0]!r}); use one layout")
            for label, cls in enumerate(classes):
                names, others = _images_in(root / cls)
                ignored += [f"{cls}/{n}" for n in others]
                if not names:
                    raise BuildError(f"imagefolder: class folder {root / cls} holds no png/jpg images")
                files += [f"{cls}/{n}" for n in names]
                labels += [label] * len(names)
            self.class_names = classes
        else:
            if not top_images:
                raise BuildError(f"imagefolder: {root} holds no class sub-folders and no png/jpg images")
            files, labels, self.class_names = top_images, [], []
        if ignored:  # named, so that a misplaced .webp or .tif is noticed
            log.warning("imagefolder: ignored %d non-image file(s) under %s (only .png/.jpg/.jpeg are read): %s",
                        len(ignored), root, _named(ignored))
        self.skipped: list[str] = []
        if skip_bad:
            files, labels = self._drop_bad(root, files, labels)
        self.root, self.files, self.labels = root, files, labels
        exts = {IMAGE_EXTENSIONS[os.path.splitext(f)[1].lower()] for f in files}
        # one format per dataset: copy bytes when all files share it, else re-encode all to png
        self.native_format = exts.pop() if len(exts) == 1 else None
        self.ignored = len(ignored)

    def _drop_bad(self, root: Path, files: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
        """--skip-bad: decode every image once (threads: PIL releases the GIL) and leave out those that fail,
        before the write, so that the sample count and order are known up front."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            reasons = list(pool.map(lambda f: _unreadable(root / f), files))
        bad = [i for i, why in enumerate(reasons) if why]
        for i in bad:
            log.warning("imagefolder: --skip-bad: skipped %s: %s", root / files[i], reasons[i])
        self.skipped = [files[i] for i in bad]
        if bad:
            log.warning("imagefolder: --skip-bad: skipped %d unreadable image(s) of %d", len(bad), len(files))
        if len(bad) == len(files):
            raise BuildError(f"imagefolder: none of the {len(files)} images under {root} can be decoded")
        keep = [i for i, why in enumerate(reasons) if not why]
        return [files[i] for i in keep], [labels[i] for i in keep] if labels else []

    def __len__(self) -> int:
        return len(self.files)

    def item(self, index: int) -> Item:
        rel = self.files[index]
        path = self.root / rel
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BuildError(f"imagefolder: cannot read {path}: {e}") from None
        ext = IMAGE_EXTENSIONS[os.path.splitext(rel)[1].lower()]
        label = self.labels[index] if self.labels else None
        return Item(origin=str(path), label=label, image_bytes=data, ext=ext)

    def describe(self) -> dict:
        return {"source": self.name, "root": str(self.root), "files": len(self.files),
                "ignored_files": self.ignored, "skipped_bad": self.skipped}
