"""Per-file validation: decide whether one raw file is an image the preprocess stage can use as is."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
# 8-bit modes that preprocess converts to L or RGB without loss of meaning. Rejected on purpose: CMYK and
# YCbCr/LAB/HSV (PIL converts them to RGB without colour management, so colours come out wrong) and
# 16-bit/float modes (I;16, I, F: converting to 8 bits clips them).
ACCEPTED_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
MIN_SIDE = 4
# Pixels an image may have before it is decoded: a small file can hold a huge image (a 13000x13000 PNG of
# flat colour is 657 KB and decodes to 676 MB of RGBA). 25 MP keeps one decode around 100 MB.
DEFAULT_MAX_PIXELS = 25_000_000
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class ImageInfo:
    height: int
    width: int
    channels: int
    mode: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Check size and mode from the header, then decode fully; raises ``ValueError``/``OSError`` with the reason.

    The header checks come first, so an oversized image is refused before a byte of it is decoded.
    ``verify()`` checks the container (CRCs, structure) but not the pixel data; ``load()`` decodes it and so
    catches truncation that ``verify()`` misses. PIL needs a fresh handle after ``verify()``.
    """
    import warnings

    from PIL import Image

    if not data:
        raise ValueError("zero-size file")
    with warnings.catch_warnings():
        # Our budget decides (below); PIL's own bomb warning would only add noise for the same image.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ValueError(
                    f"image is {w}x{h} = {w * h} pixels, over the budget of {max_pixels} "
                    "(ingest.max_pixels); not decoded"
                )
            if im.mode not in ACCEPTED_MODES:
                raise ValueError(
                    f"unsupported image mode {im.mode} (accepted: {', '.join(sorted(ACCEPTED_MODES))})"
                )
            if min(w, h) < MIN_SIDE:
                raise ValueError(f"image too small: {w}x{h} (minimum side {MIN_SIDE})")
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode, channels = im.mode, len(im.getbands())
    return ImageInfo(height=h, width=w, channels=channels, mode=mode)


def reject_reason(
    name: str, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[ImageInfo | None, str | None]:
    """(info, None) for a usable image file, (None, reason) otherwise: the reason goes to the rejects table."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return None, f"not an image file ({suffix or 'no suffix'})"
    try:
        return validate_image(data, max_pixels), None
    except Exception as exc:  # PIL raises many types for corrupt data; the reason is what matters
        # Drop object reprs ("<_io.BytesIO object at 0x...>"): the rejects table is versioned with the data,
        # so the same file must always give the same reason.
        return None, f"{type(exc).__name__}: {_OBJECT_REPR.sub('', str(exc)).strip()}"
