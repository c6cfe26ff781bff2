"""Per-file validation: decide whether one raw file is an image the preprocess stage can use as is."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
# 8-bit modes that preprocess converts to L or RGB without loss of meaning. Rejected on purpose: CMYK and
# YCbCr/LAB/HSV (PIL converts them to RGB without colour management, so colours come out wrong) and
# 16-bit/float modes (I;16, I, F: converting to 8 bits clips them).
ACCEPTED_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
MIN_SIDE = 4
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class ImageInfo:
    height: int
    width: int
    channels: int
    mode: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_image(data: bytes) -> ImageInfo:
    """Decode fully and check the mode and size; raises ``ValueError``/``OSError`` with the reason.

    ``verify()`` checks the container (CRCs, structure) but not the pixel data; ``load()`` decodes it and so
    catches truncation that ``verify()`` misses. PIL needs a fresh handle after ``verify()``.
    """
    from PIL import Image

    if not data:
        raise ValueError("zero-size file")
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ACCEPTED_MODES:
            raise ValueError(
                f"unsupported image mode {im.mode} (accepted: {', '.join(sorted(ACCEPTED_MODES))})"
            )
        if min(im.size) < MIN_SIDE:
            raise ValueError(f"image too small: {im.size[0]}x{im.size[1]} (minimum side {MIN_SIDE})")
        shape = np.asarray(im).shape
        mode = im.mode
    return ImageInfo(height=shape[0], width=shape[1], channels=shape[2] if len(shape) == 3 else 1, mode=mode)


def reject_reason(name: str, data: bytes) -> tuple[ImageInfo | None, str | None]:
    """(info, None) for a usable image file, (None, reason) otherwise: the reason goes to the rejects table."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return None, f"not an image file ({suffix or 'no suffix'})"
    try:
        return validate_image(data), None
    except Exception as exc:  # PIL raises many types for corrupt data; the reason is what matters
        # Drop object reprs ("<_io.BytesIO object at 0x...>"): the rejects table is versioned with the data,
        # so the same file must always give the same reason.
        return None, f"{type(exc).__name__}: {_OBJECT_REPR.sub('', str(exc)).strip()}"
