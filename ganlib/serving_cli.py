"""``gan-generate``: pull a published generator, sample a grid of images, write it as a PNG.

    gan-generate --uri s3://models/gan --model digits --n 64 --seed 0 --out grid.png [--device cpu]

Prints the provider ONNX Runtime really used, the version and its sha256. Torch-free, like ganlib.serving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .serving import OnnxGenerator, ProviderError, StoreError, make_grid, pull, to_png


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gan-generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", required=True, help="store: s3://bucket/prefix, file:///path or a directory")
    p.add_argument("--model", required=True, help="model name in the store")
    p.add_argument("--version", default="latest", help="version to pull (default: latest)")
    p.add_argument("--n", type=int, default=64, help="number of images (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    p.add_argument("--class-id", type=int, default=None, help="class for all images (conditional models)")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row (default: ~sqrt(n))")
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="cuda = fail without a GPU"
    )
    p.add_argument(
        "--cache-dir", default=None, help="download cache (default: $GAN_CACHE_DIR or ~/.cache/gan-workflow)"
    )
    p.add_argument("--out", default="grid.png", help="output PNG path (default: grid.png)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1:
        print("gan-generate: --n must be >= 1", file=sys.stderr)
        return 2
    try:
        pulled = pull(args.uri, args.model, args.version, cache_dir=args.cache_dir)
        gen = OnnxGenerator(pulled.path, device=args.device)
        images = gen.generate(args.n, seed=args.seed, class_id=args.class_id)
    except (StoreError, ProviderError, ValueError) as exc:
        print(f"gan-generate: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_png(make_grid(images, nrow=args.nrow)))
    print(f"provider={gen.provider} model={args.model} version={pulled.version} sha256={pulled.sha256}")
    print(f"wrote {len(images)} images to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
