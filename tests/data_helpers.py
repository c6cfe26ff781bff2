"""Builders for data tests: tiny image folders, corrupt files, a fake MNIST root, temp git + DVC workspaces."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
from pathlib import Path

import numpy as np
import yaml
from workspace_helpers import make_workspace


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


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
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgba) * width  # filter type 0, then the pixels
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path
