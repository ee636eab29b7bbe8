"""Is this file a torch checkpoint at all? Decided from its bytes before anything is unpickled.

`torch.save` writes a zip archive whose `*/data.pkl` holds the pickled object. A file that is no zip (random
bytes, an HTML page saved in place of a download, an older non-zip save), a torn one (the zip's directory sits
at its end, so a cut file has none) or one whose pickle fails its zip CRC is refused here, with what it is; it
never reaches the unpickler (torch's own advice for such a file is to load it with weights_only=False, i.e. to
run whatever it contains). `expect_kind` then says when a readable checkpoint is of another kind than the
command needs (an autoencoder where a diffusion model goes)."""
from __future__ import annotations

import zipfile
from pathlib import Path

from lit_diffusion.runs.content_hash import CheckpointError
from lit_diffusion.runs.record import AUTOENCODER, DIFFUSION_MODEL, CheckpointRecord

NEXT_STEP = ("give a checkpoint written by `lit-diffusion fit` (`--ckpt_path last` picks the run's newest readable "
             "one)")


def _what_it_is(head: bytes, size: int) -> str:
    if size == 0:
        return "the file is empty"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "this is an HTML/XML page (a failed download?), expected a torch checkpoint"
    if head.startswith(b"PK"):
        return f"it is cut off or damaged ({size:,} bytes, no complete zip directory at its end)"
    if head.startswith((b"{", b"[")):
        return "this is a JSON/text file, expected a torch checkpoint"
    return f"it is not a torch zip archive ({size:,} bytes starting {head[:8].hex()})"


def refuse(path: Path, cause: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable checkpoint: {cause}; {NEXT_STEP}")


def check_torch_file(path: str | Path) -> None:
    """Raise CheckpointError (the file, the cause, what to do) unless `path` is a whole torch zip archive whose
    pickle matches its CRC."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    if not zipfile.is_zipfile(path):
        raise refuse(path, _what_it_is(head, size))
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                raise refuse(path, "this is a zip archive without a torch pickle (data.pkl), expected a torch "
                                   "checkpoint")
            archive.read(pickles[0])  # checks the pickle's CRC: a damaged pickle is never unpickled
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise refuse(path, f"its archive is damaged ({type(error).__name__}: {error})") from None


def expect_kind(record: CheckpointRecord, kind: str, use: str) -> None:
    """Raise CheckpointError when the checkpoint is of the other known kind than `kind` (`use`: what it was given
    for). A file without a model record (weights saved by hand) is left to its reader's own checks."""
    if record.kind != kind and record.kind in (AUTOENCODER, DIFFUSION_MODEL):
        hint = (" (an autoencoder goes to `data encode --autoencoder`, or to a latent model's `sample --autoencoder`)"
                if record.kind == AUTOENCODER else "")
        raise CheckpointError(f"{record.path} is {record.kind}, expected {kind} for {use}{hint}")
