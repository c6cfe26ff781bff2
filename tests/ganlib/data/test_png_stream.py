"""The PNG stream check that replaces a full decode at ingestion must accept and reject exactly what PIL's
``verify()`` + ``load()`` do, on every truncation and on damage inside and outside the pixel data."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from data_helpers import adam7_png, png_chunk
from PIL import Image

from ganlib.data.png_stream import check_png_stream, png_header
from ganlib.data.validate import reject_reason


def _pil_accepts(data: bytes) -> bool:
    """The reference: PIL's container check, then a full decode (the validation ingestion did before)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:
        return False
    return True


def _stream_accepts(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).close()  # ingestion reads the header with PIL first
        assert check_png_stream(data) is True
    except (OSError, ValueError, SyntaxError):
        return False
    return True


def _png(image: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **save)
    return buf.getvalue()


def _corpus() -> list[bytes]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (20, 17, 3), dtype=np.uint8)
    return [
        _png(Image.fromarray(noise)),  # RGB
        _png(Image.fromarray(noise[..., 0])),  # L, odd width
        _png(Image.fromarray(np.dstack([noise, noise[..., :1]]))),  # RGBA
        _png(Image.fromarray(noise).convert("P")),  # palette (a PLTE chunk before IDAT)
        _png(Image.fromarray(noise[..., 0] > 127)),  # 1 bit per pixel
        _png(Image.fromarray(noise[..., :2].copy().view(np.uint16)[..., 0]).convert("I;16")),  # 16-bit grey
        _png(Image.fromarray(noise), pnginfo=_text_chunk()),  # a text chunk after IDAT
    ]


def _text_chunk():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("comment", "after the pixels", zip=False)
    return info


def _chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start of the chunk, length of its data) for each chunk."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, pos, length))
        pos += 12 + length
    return out


def _with_idat(data: bytes, body: bytes) -> bytes:
    """``data`` with its (single) IDAT chunk's data replaced and the CRC made right, so only the pixel stream
    itself is damaged."""
    kind, pos, length = next(c for c in _chunks(data) if c[0] == b"IDAT")
    return data[:pos] + png_chunk(kind, body) + data[pos + 12 + length :]


def test_sound_files_pass() -> None:
    for data in _corpus():
        assert _pil_accepts(data) and _stream_accepts(data)


def test_header_is_read_as_pil_reads_it() -> None:
    grey_alpha = Image.fromarray(np.zeros((5, 6, 2), np.uint8), "LA")
    for data in [*_corpus(), _png(grey_alpha), adam7_png(np.zeros((9, 7), np.uint8))]:
        with Image.open(io.BytesIO(data)) as im:
            assert png_header(data) == (im.width, im.height, im.mode, len(im.getbands()))
    assert png_header(b"GIF89a" + bytes(40)) is None
    broken_ihdr = bytearray(_corpus()[0])
    broken_ihdr[20] ^= 1  # the header's CRC no longer matches: PIL reads it
    assert png_header(bytes(broken_ihdr)) is None
    assert reject_reason("x.png", bytes(broken_ihdr))[0] is None  # rejected, in PIL's words


def test_every_truncation_agrees_with_pil() -> None:
    for data in _corpus():
        for cut in range(8, len(data)):
            assert _stream_accepts(data[:cut]) == _pil_accepts(data[:cut]), (len(data), cut)


def test_random_byte_damage_agrees_with_pil() -> None:
    rng = np.random.default_rng(1)
    damaged = 0
    for data in _corpus():
        for _ in range(200):
            bad = bytearray(data)
            bad[int(rng.integers(8, len(data)))] ^= int(rng.integers(1, 256))
            pil = _pil_accepts(bytes(bad))
            assert _stream_accepts(bytes(bad)) == pil, bytes(bad)
            damaged += not pil
    assert damaged > 1000  # the corpus really is damaged, mostly


def test_damage_inside_the_pixel_stream_with_a_correct_crc_agrees_with_pil() -> None:
    """Flipped bytes in the zlib stream, a stream cut short, and a bad row filter: the CRC cannot see these,
    only inflating the stream can."""
    rng = np.random.default_rng(2)
    rejected = 0
    for data in _corpus():
        kind, pos, length = next(c for c in _chunks(data) if c[0] == b"IDAT")
        body = data[pos + 8 : pos + 8 + length]
        cases = [body[: len(body) // 2], body[:-5]]
        for _ in range(40):
            flipped = bytearray(body)
            flipped[int(rng.integers(0, len(body)))] ^= int(rng.integers(1, 256))
            cases.append(bytes(flipped))
        rows = bytearray(zlib.decompress(body))
        rows[0] = 7  # filter types are 0..4
        cases.append(zlib.compress(bytes(rows)))
        for case in cases:
            bad = _with_idat(data, case)
            pil = _pil_accepts(bad)
            assert _stream_accepts(bad) == pil, (kind, len(case))
            rejected += not pil
    assert rejected >= 3 * len(_corpus())


def test_interlaced_files_are_left_to_a_full_decode() -> None:
    grey = np.random.default_rng(3).integers(0, 256, (16, 13), dtype=np.uint8)
    good = adam7_png(grey)
    with Image.open(io.BytesIO(good)) as im:
        assert np.array_equal(np.asarray(im), grey)  # the hand-written file is what it claims to be
    assert check_png_stream(good) is False
    assert reject_reason("x.png", good)[1] is None
    _, pos, length = next(c for c in _chunks(good) if c[0] == b"IDAT")
    short = _with_idat(good, zlib.compress(zlib.decompress(good[pos + 8 : pos + 8 + length])[:-40]))
    info, reason = reject_reason("x.png", short)
    assert info is None and reason  # the full decode catches pixel data cut short


def test_reject_reasons_name_the_damage() -> None:
    data = _corpus()[0]
    assert "truncated" in reject_reason("x.png", data[: len(data) // 2])[1]
    pos = next(c[1] for c in _chunks(data) if c[0] == b"IDAT")
    bad = bytearray(data)
    bad[pos + 20] ^= 0xFF
    assert "CRC" in reject_reason("x.png", bytes(bad))[1]
