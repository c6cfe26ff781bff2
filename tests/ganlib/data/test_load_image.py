"""The preprocess stage decodes plain 8-bit grey/RGB PNGs with libspng (pyspng) and everything else with PIL:
both paths must give the pixels an independent PIL reference gives, and each file must take the path meant
for it (a file with transparency or interlacing would come out wrong, or untested, through libspng)."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from data_helpers import adam7_png, hand_png, png_chunk, reference_pixels
from PIL import Image

from ganlib.data import preprocess
from ganlib.data.preprocess import load_image
from ganlib.data.validate import reject_reason

BACKGROUND = [30, 200, 90]


@pytest.fixture
def libspng_calls(monkeypatch) -> list[int]:
    """Counts the images decoded by libspng."""
    calls: list[int] = []
    real = preprocess.pyspng.load
    monkeypatch.setattr(preprocess.pyspng, "load", lambda data: calls.append(1) or real(data))
    return calls


def _every_filter_png(rng: np.random.Generator, width: int, height: int, colour: int) -> bytes:
    """Random filtered rows with the filter types 0..4 in turn: every byte string is valid filtered data, so
    this exercises each unfilter (Paeth included) on arbitrary values."""
    samples = width * (1 if colour == 0 else 3)
    rows = b"".join(bytes([y % 5]) + rng.bytes(samples) for y in range(height))
    return hand_png(width, height, colour, zlib.compress(rows))


def _pil_png(pixels: np.ndarray | Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    image.save(buf, format="PNG", **save)
    return buf.getvalue()


@pytest.mark.parametrize(("resolution", "channels"), [(16, 3), (16, 1), (9, 3)])
def test_plain_pngs_decode_through_libspng_to_the_reference_pixels(
    resolution: int, channels: int, libspng_calls: list[int]
) -> None:
    rng = np.random.default_rng(resolution + channels)
    colour = 0 if channels == 1 else 2
    shape = (lambda h, w: (h, w)) if channels == 1 else (lambda h, w: (h, w, 3))
    files = [_every_filter_png(rng, w, h, colour) for w, h in [(16, 16), (16, 23), (31, 12), (5, 5)]]
    files += [  # PIL's own encoder: its adaptive filters at several compression levels, optimize on
        _pil_png(rng.integers(0, 256, shape(h, w), dtype=np.uint8), compress_level=level, optimize=opt)
        for (h, w), level, opt in [((16, 16), 0, False), ((20, 16), 6, False), ((16, 40), 9, True)]
    ]
    for data in files:
        out = load_image(data, resolution, channels, BACKGROUND)
        assert out.dtype == np.uint8 and out.shape == (channels, resolution, resolution)
        np.testing.assert_array_equal(out, reference_pixels(data, resolution, channels, BACKGROUND))
    assert len(libspng_calls) == len(files)


def test_files_libspng_would_decode_differently_go_to_pil(libspng_calls: list[int]) -> None:
    rng = np.random.default_rng(5)
    grey, rgb = rng.integers(0, 256, (12, 12), dtype=np.uint8), rng.integers(0, 256, (12, 12, 3), np.uint8)
    grey[:3] = 60  # the transparent grey level below
    rgb[:3] = (1, 2, 3)
    rows = b"".join(b"\0" + row.tobytes() for row in grey)
    cases = {
        # tRNS makes a colour transparent: PIL composites it onto the background, libspng would ignore it.
        "grey + tRNS": (_pil_png(grey, transparency=60), 1),
        "rgb + tRNS": (_pil_png(rgb, transparency=(1, 2, 3)), 3),
        "grey + tRNS by hand": (
            hand_png(12, 12, 0, zlib.compress(rows), extra=png_chunk(b"tRNS", b"\0<")),
            1,
        ),
        "interlaced": (adam7_png(grey), 1),
        "grey for an RGB output": (_pil_png(grey), 3),
        "rgb for a grey output": (_pil_png(rgb), 1),
        "palette": (_pil_png(Image.fromarray(grey % 8).convert("P")), 3),
        "16-bit grey": (_pil_png(grey.astype(np.uint16) * 257), 1),
    }
    for name, (data, channels) in cases.items():
        out = load_image(data, 8, channels, BACKGROUND)
        np.testing.assert_array_equal(out, reference_pixels(data, 8, channels, BACKGROUND), err_msg=name)
    assert libspng_calls == []
    # The transparency was applied: the top rows show the background, not the stored colour.
    top_rows = load_image(cases["rgb + tRNS"][0], 12, 3, BACKGROUND)[:, :3]
    assert (top_rows == np.array(BACKGROUND)[:, None, None]).all()


def test_a_file_libspng_refuses_but_ingestion_accepted_is_decoded_by_pil(libspng_calls: list[int]) -> None:
    """An unknown critical chunk: PIL skips it, so ingestion accepts the file; libspng refuses it."""
    grey = np.random.default_rng(9).integers(0, 256, (8, 8), dtype=np.uint8)
    plain = hand_png(8, 8, 0, zlib.compress(b"".join(b"\0" + row.tobytes() for row in grey)))
    data = plain[:33] + png_chunk(b"ABCD", b"xyz") + plain[33:]  # after IHDR
    assert reject_reason("x.png", data) == (reject_reason("x.png", plain)[0], None)
    with pytest.raises(RuntimeError):
        preprocess.pyspng.load(data)
    libspng_calls.clear()
    np.testing.assert_array_equal(load_image(data, 8, 1), grey[None])
    assert libspng_calls == [1]  # tried first, then PIL
