"""Builders for data tests: tiny image folders, corrupt files, a fake MNIST root, temp git + DVC workspaces."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import yaml
from workspace_helpers import make_workspace


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def reference_pixels(
    source: Path | bytes, resolution: int, channels: int, background: list[int]
) -> np.ndarray:
    """What the preprocess stage promises, written out from the source file: composite anything with
    transparency onto the background, convert, centre-crop to a square (numpy slicing), bicubic resize."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            im = Image.alpha_composite(Image.new("RGBA", im.size, (*background, 255)), im.convert("RGBA"))
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    h, w = arr.shape[:2]
    s = min(h, w)
    square = arr[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    resized = np.asarray(Image.fromarray(square).resize((resolution, resolution), Image.Resampling.BICUBIC))
    return resized[None] if channels == 1 else resized.transpose(2, 0, 1)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def hand_png(
    width: int, height: int, colour: int, idat: bytes, interlace: int = 0, extra: bytes = b""
) -> bytes:
    """An 8-bit PNG of colour type ``colour`` around ``idat`` (the zlib stream of the filtered rows: a filter
    byte, then the samples, per row), ``extra`` chunks before the pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, interlace)
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
    return head + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def adam7_png(grey: np.ndarray) -> bytes:
    """An interlaced 8-bit grey PNG written by hand (PIL writes none): the seven Adam7 passes, filter 0."""
    passes = [
        (0, 0, 8, 8),
        (0, 4, 8, 8),
        (4, 0, 8, 4),
        (0, 2, 4, 4),
        (2, 0, 4, 2),
        (0, 1, 2, 2),
        (1, 0, 2, 1),
    ]
    rows = b"".join(
        b"\0" + row.tobytes() for y0, x0, dy, dx in passes for row in grey[y0::dy, x0::dx] if row.size
    )
    h, w = grey.shape
    return hand_png(w, h, 0, zlib.compress(rows), interlace=1)


def noise(seed: int, size: int = 12, channels: int = 1) -> np.ndarray:
    shape = (size, size) if channels == 1 else (size, size, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def image_folder(
    root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 8, seed: int = 0
) -> Path:
    """``root/<class>/<i>.png`` with random pixels (distinct per ``seed``), 12x12 greyscale."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i:03d}.png").write_bytes(png_bytes(noise(seed * 1000 + c * 100 + i)))
    return root


def write_corrupt_files(folder: Path) -> dict[str, str]:
    """One file per kind of damage; returns {relative path: a word the reject reason must contain}."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    good = png_bytes(noise(99, size=64))
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("this is not an image\n")
    Image.new("CMYK", (12, 12), (10, 20, 30, 40)).save(folder / "cmyk.jpg")
    return {
        f"{folder.name}/truncated.png": "truncated",
        f"{folder.name}/empty.png": "zero-size",
        f"{folder.name}/notes.png": "cannot identify",
        f"{folder.name}/cmyk.jpg": "CMYK",
    }


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root``, by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def raw_files(raw: Path) -> dict[str, bytes]:
    """The images the raw data holds, by name, read with Python's ``tarfile`` from every shard (not through
    the manifest or ganlib's reader): each member must be a regular file, each name appear once."""
    import tarfile

    out: dict[str, bytes] = {}
    for shard in sorted((raw / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                assert member.isreg(), (shard, member.name)
                assert member.name not in out, member.name
                out[member.name] = tar.extractfile(member).read()
    return out


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format torchvision's MNIST reader expects: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def fake_mnist(
    root: Path, n_train: int = 30, n_test: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Write ``<root>/MNIST/raw/*-ubyte`` (28x28 images); returns the training (images, labels)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        out[split] = (images, labels.astype(np.int64))
    return out["train"]


def data_workspace(root: Path, source: Path | str, name: str = "toy", resolution: int = 8) -> Path:
    """A temp git + DVC workspace whose params point the ingest at ``source``."""
    ws = make_workspace(root, resolution=resolution)
    set_params(ws, ingest={"name": name, "source": str(source)})
    return ws


def set_params(ws: Path, **sections: dict) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    for section, values in sections.items():
        params.setdefault(section, {}).update(values)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def git(ws: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=ws,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit_all(ws: Path, message: str = "data") -> None:
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", message)


def flat_png(path: Path, width: int, height: int, rgba: tuple[int, int, int, int] = (0, 0, 0, 0)) -> Path:
    """A valid RGBA PNG of one flat colour, written row by row through zlib: a huge image costs little
    memory to make (13000x13000 is ~660 KB on disk and 676 MB once decoded)."""
    row = b"\x00" + bytes(rgba) * width  # filter type 0, then the pixels
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.write_bytes(hand_png(width, height, 6, idat))  # 8-bit RGBA
    return path
