"""Per-file validation: decide whether one raw file is an image the preprocess stage can use as is."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .png_stream import check_png_stream, png_header

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
    A non-interlaced PNG is checked without PIL (``png_header``, ``check_png_stream``: the pixel stream is
    inflated (with ISA-L) and checked but not unfiltered into an image, 4x cheaper; the preprocess stage decodes
    every image anyway). Other files: ``verify()`` checks the container (CRCs, structure) but not the pixel data;
    ``load()`` decodes it and so catches truncation that ``verify()`` misses. PIL needs a fresh handle after
    ``verify()``.
    """
    import warnings

    from PIL import Image

    if not data:
        raise ValueError("zero-size file")
    header = png_header(data)
    if header is not None:
        width, height, mode, channels = header
        _check_header(width, height, mode, max_pixels)
        if check_png_stream(data):
            return ImageInfo(height=height, width=width, channels=channels, mode=mode)
    with warnings.catch_warnings():
        # Our budget decides (below); PIL's own bomb warning would only add noise for the same image.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            (width, height), mode, channels = im.size, im.mode, len(im.getbands())
            _check_header(width, height, mode, max_pixels)
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    return ImageInfo(height=height, width=width, channels=channels, mode=mode)


def _check_header(width: int, height: int, mode: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ValueError(
            f"image is {width}x{height} = {width * height} pixels, over the budget of {max_pixels} "
            "(ingest.max_pixels); not decoded"
        )
    if mode not in ACCEPTED_MODES:
        raise ValueError(f"unsupported image mode {mode} (accepted: {', '.join(sorted(ACCEPTED_MODES))})")
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"image too small: {width}x{height} (minimum side {MIN_SIDE})")


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
