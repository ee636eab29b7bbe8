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


def _images_in(folder: Path) -> tuple[list[str], int]:
    """Sorted image file names directly in ``folder`` and the count of other files ignored."""
    images, ignored = [], 0
    with os.scandir(folder) as it:
        for entry in it:
            if not entry.is_file():
                continue
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                images.append(entry.name)
            else:
                ignored += 1
    return sorted(images), ignored


class ImageFolderSource(Source):
    name = "imagefolder"

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise BuildError(f"imagefolder: {root} is not a folder")
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        top_images, ignored = _images_in(root)
        files: list[str] = []
        labels: list[int] = []
        if classes:
            if top_images:
                raise BuildError(f"imagefolder: {root} holds both class sub-folders {classes[:3]}... and "
                                 f"images at its top level ({top_images[0]!r}); use one layout")
            for label, cls in enumerate(classes):
                names, n_ignored = _images_in(root / cls)
                ignored += n_ignored
                if not names:
                    raise BuildError(f"imagefolder: class folder {root / cls} holds no png/jpg images")
                files += [f"{cls}/{n}" for n in names]
                labels += [label] * len(names)
            self.class_names = classes
        else:
            if not top_images:
                raise BuildError(f"imagefolder: {root} holds no class sub-folders and no png/jpg images")
            files, labels, self.class_names = top_images, [], []
        if ignored:
            log.warning("imagefolder: ignored %d non-image file(s) under %s", ignored, root)
        self.root, self.files, self.labels = root, files, labels
        exts = {IMAGE_EXTENSIONS[os.path.splitext(f)[1].lower()] for f in files}
        # one format per dataset: copy bytes when all files share it, else re-encode all to png
        self.native_format = exts.pop() if len(exts) == 1 else None
        self.ignored = ignored

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
                "ignored_files": self.ignored}
