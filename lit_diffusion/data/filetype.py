"""What a file is, from its first bytes, so that the wrong kind of file given to a command (a zip as shards, a
web page saved in place of a checkpoint) is refused with "this is X, expected Y" rather than a parser's internals
("invalid literal for int() with base 8", "invalid load key, '<'")."""
from __future__ import annotations

import os

# kind -> (leading bytes, what to call it); torch checkpoints are zip files (legacy ones pickles)
SIGNATURES = {
    "zip": ((b"PK\x03\x04", b"PK\x05\x06"), "a zip archive"),
    "pickle": (tuple(b"\x80" + bytes([p]) for p in range(2, 6)), "a Python pickle"),
    "png": ((b"\x89PNG\r\n\x1a\n",), "a PNG image"),
    "jpeg": ((b"\xff\xd8\xff",), "a JPEG image"),
    "npy": ((b"\x93NUMPY",), "a numpy .npy array"),
    "bzip2": ((b"BZh",), "a bzip2-compressed file"),
    "xz": ((b"\xfd7zXZ\x00",), "an xz-compressed file"),
    "zstd": ((b"\x28\xb5\x2f\xfd",), "a zstd-compressed file"),
    "7z": ((b"7z\xbc\xaf\x27\x1c",), "a 7-zip archive"),
    "pdf": ((b"%PDF",), "a PDF document"),
}
DESCRIPTIONS = {kind: what for kind, (_, what) in SIGNATURES.items()}
DESCRIPTIONS["html"] = "an HTML page (a web page saved in place of the file?)"
DESCRIPTIONS["json"] = "a JSON file"


def sniff(head: bytes) -> str | None:
    """The kind of a file (a key of DESCRIPTIONS) from its first bytes, or None when unknown."""
    for kind, (magics, _) in SIGNATURES.items():
        if head.startswith(magics):
            return kind
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "html"
    if text.startswith((b"{", b"[")):
        return "json"
    return None


def sniff_file(path: str | os.PathLike) -> str | None:
    with open(path, "rb") as f:
        return sniff(f.read(1024))


def describe(kind: str) -> str:
    return DESCRIPTIONS[kind]
