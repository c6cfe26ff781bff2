"""``gan-inpaint``: fill the holes of an image with a trained generator (semantic inpainting, Yeh et al.).

    gan-inpaint --checkpoint outputs/train/<run>/checkpoint.pt --image digit.png --mask hole.png --out done.png

The mask is a PNG of the same size as the image: white (>= 128) marks the hole to fill, black the pixels
to keep (``--mask-marks known`` flips that). Image and mask are resized to the generator's resolution;
the result is written at that resolution. Needs the training extra (torch).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

from .pixels import to_model_range, to_uint8


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gan-inpaint", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a ganlib training checkpoint (checkpoint.pt)")
    p.add_argument("--image", required=True, help="the image to complete (PNG)")
    p.add_argument("--mask", required=True, help="PNG: white = hole to fill (see --mask-marks)")
    p.add_argument("--out", required=True, help="where to write the completed PNG")
    p.add_argument("--mask-marks", choices=["hole", "known"], default="hole", help="what white means")
    p.add_argument("--steps", type=int, default=300, help="Adam steps on z (default: 300)")
    p.add_argument("--restarts", type=int, default=8, help="random restarts (per class when searching)")
    p.add_argument("--lam", type=float, default=0.003, help="weight of the perceptual loss (default: 0.003)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate on z (default: 0.05)")
    p.add_argument(
        "--class-id", type=int, default=None, help="conditional models: the class (default: search)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--save-generated", default=None, help="also write G(z_hat) itself to this PNG")
    return p


def read_png(path: str | Path, channels: int, resolution: int, nearest: bool = False) -> np.ndarray:
    """A PNG as uint8 [channels, resolution, resolution]."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB")
        if img.size != (resolution, resolution):
            resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
            img = img.resize((resolution, resolution), resample)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """float [C, H, W] in [-1, 1] -> PNG."""
    from PIL import Image

    arr = to_uint8(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.restarts < 1:
        print("gan-inpaint: --steps and --restarts must be >= 1", file=sys.stderr)
        return 2
    import torch

    from .inpaint import inpaint
    from .models import load_discriminator, load_generator

    try:
        generator = load_generator(args.checkpoint, map_location=args.device)
        discriminator = load_discriminator(args.checkpoint, map_location=args.device) if args.lam else None
        spec = generator.spec
        image = read_png(args.image, spec.channels, spec.resolution)
        known = read_png(args.mask, 1, spec.resolution, nearest=True)[:1] >= 128
    except (OSError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:  # unreadable or not ours
        print(f"gan-inpaint: {exc}", file=sys.stderr)
        return 1
    if args.mask_marks == "hole":
        known = ~known
    if known.all():
        print("gan-inpaint: the mask marks no hole: nothing to fill", file=sys.stderr)
        return 1
    if args.class_id is not None and not generator.num_classes:
        print("gan-inpaint: this generator is unconditional: drop --class-id", file=sys.stderr)
        return 2
    if args.class_id is not None and not 0 <= args.class_id < generator.num_classes:
        print(f"gan-inpaint: --class-id must be in [0, {generator.num_classes})", file=sys.stderr)
        return 2

    x = torch.from_numpy(to_model_range(image))[None]
    m = torch.from_numpy(known.astype(np.float32))[None]
    result = inpaint(
        generator.to(args.device),
        x,
        m,
        discriminator=discriminator,
        lam=args.lam,
        steps=args.steps,
        restarts=args.restarts,
        lr=args.lr,
        class_id=args.class_id,
        seed=args.seed,
    )
    out = write_png(result.completed[0].cpu().numpy(), args.out)
    if args.save_generated:
        write_png(result.generated[0].cpu().numpy(), args.save_generated)
    cls = "" if result.class_id is None else f" class={int(result.class_id[0])}"
    print(
        f"contextual={float(result.contextual[0]):.4g} perceptual={float(result.perceptual[0]):.4g}{cls} "
        f"hole_pixels={int((~known).sum())}"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
