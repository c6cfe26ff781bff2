"""Latent-space tools for people who use a trained generator: interpolation, vector arithmetic, style mixing.

- ``interpolation_path`` / ``interpolate``: linear or spherical paths between two latents and the images
  along them. The spherical path is the same formula as ``ganlib.serving.slerp`` (computed in float64),
  so an ONNX consumer walking the same path gets the same images.
- ``latent_arithmetic`` / ``arithmetic_samples``: Radford et al.'s vector arithmetic over *averaged*
  latents (mean(a) - mean(b) + mean(c)); averaging a few exemplars per concept is what makes it stable.
- ``style_mix``: for the style-based generator, the per-layer w of one source with a band of layers
  (coarse / middle / fine, by resolution) taken from another source (Karras et al. 2019, Fig. 3).
- ``save_*_strip``: the same as PNG strips, for asset metadata and notebooks.

Every function takes a generator honouring ``ganlib.models.base.Generator`` and leaves its mode alone:
call ``.eval()`` first (a BatchNorm generator in train mode would mix the samples of a batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import latent_paths
from .models.base import Generator

STYLE_BANDS = ("coarse", "middle", "fine")


# ------------------------------------------------------------------------------------------------ paths
def interpolation_path(
    z0: torch.Tensor, z1: torch.Tensor, steps: int, spherical: bool = True
) -> torch.Tensor:
    """``steps`` latents (float32 [steps, D]) evenly spaced in t from ``z0`` to ``z1``, endpoints included:
    ``ganlib.latent_paths.interpolation_path`` (float64, shared with the consumer) on tensors."""
    path = latent_paths.interpolation_path(
        z0.detach().reshape(-1).cpu().numpy(), z1.detach().reshape(-1).cpu().numpy(), steps, spherical
    )
    return torch.from_numpy(path)


def _device(generator: torch.nn.Module) -> torch.device:
    return next(generator.parameters()).device


def _class_ids(generator: Generator, n: int, class_id: int | torch.Tensor | None) -> torch.Tensor | None:
    """None for unconditional generators; otherwise ``class_id`` broadcast to ``n`` (default: class 0)."""
    if not generator.num_classes:
        if class_id is not None:
            raise ValueError("this generator is unconditional: class_id must be None")
        return None
    ids = torch.as_tensor(0 if class_id is None else class_id, dtype=torch.long).reshape(-1)
    ids = ids.expand(n) if ids.numel() == 1 else ids
    if ids.numel() != n or ids.min() < 0 or ids.max() >= generator.num_classes:
        raise ValueError(f"class_id must be one id or {n} ids in [0, {generator.num_classes})")
    return ids.to(_device(generator))


@torch.no_grad()
def interpolate(
    generator: Generator,
    z0: torch.Tensor,
    z1: torch.Tensor,
    steps: int = 8,
    spherical: bool = True,
    class_id: int | None = None,
) -> torch.Tensor:
    """Images [steps, C, H, W] in [-1, 1] along the path; conditional models hold ``class_id`` (default 0)."""
    zs = interpolation_path(z0, z1, steps, spherical).to(_device(generator))
    return generator(zs, _class_ids(generator, steps, class_id))


# ---------------------------------------------------------------------------------------- arithmetic
def mean_latent(z: torch.Tensor) -> torch.Tensor:
    """[k, D] (or [D]) -> [D]: the average of a concept's exemplar latents."""
    return z.reshape(-1, z.shape[-1]).mean(0)


def latent_arithmetic(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """mean(a) - mean(b) + mean(c), e.g. smiling woman - neutral woman + neutral man (Radford et al. 2016).
    Each argument is one latent [D] or a few exemplars [k, D]."""
    return mean_latent(a) - mean_latent(b) + mean_latent(c)


@torch.no_grad()
def arithmetic_samples(
    generator: Generator,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    n: int = 8,
    noise: float = 0.25,
    seed: int = 0,
    class_id: int | None = None,
) -> torch.Tensor:
    """Images [n, C, H, W] of the arithmetic result: the first exactly, the others with uniform noise in
    [-noise, noise] added to it (as in the paper), to show the concept rather than one point."""
    z = latent_arithmetic(a, b, c).cpu()
    gen = torch.Generator().manual_seed(seed)
    jitter = (torch.rand(n, z.numel(), generator=gen) * 2 - 1) * noise
    jitter[0] = 0
    zs = (z[None] + jitter).to(_device(generator))
    return generator(zs, _class_ids(generator, n, class_id))


# --------------------------------------------------------------------------------------- style mixing
def _require_style(generator: torch.nn.Module) -> None:
    if not (hasattr(generator, "mapping") and hasattr(generator, "synthesis")):
        raise TypeError(
            f"{type(generator).__name__} is not style-based: style mixing needs `mapping(z, class_id) -> w` "
            "and `synthesis(ws[N, num_ws, w_dim]) -> image` (ganlib.models.stylegan_lite)"
        )


def style_layer_resolutions(generator: Generator) -> list[int]:
    """The resolution each entry of ws drives: one per synthesis layer, then ToRGB at full resolution."""
    _require_style(generator)
    layers = generator.synthesis.layers
    return [int(layer.resolution) for layer in layers] + [int(generator.spec.resolution)]


def style_bands(generator: Generator) -> dict[str, list[int]]:
    """ws indices of the coarse / middle / fine bands: the resolution levels (4, 8, 16, ...) split into
    three contiguous near-equal groups, lower ones first (32 px: 4-8 / 16 / 32; 1024 px would give
    4-16 / 32-128 / 256-1024, close to the paper's 4-8 / 16-32 / 64-1024)."""
    res = style_layer_resolutions(generator)
    levels = sorted(set(res))
    groups = np.array_split(np.array(levels), 3)
    return {
        name: [i for i, r in enumerate(res) if r in set(g.tolist())]
        for name, g in zip(STYLE_BANDS, groups, strict=True)
    }


@torch.no_grad()
def style_mix(
    generator: Generator,
    z_rows: torch.Tensor,
    z_cols: torch.Tensor,
    band: str | Sequence[int],
    class_rows: torch.Tensor | None = None,
    class_cols: torch.Tensor | None = None,
    truncation_psi: float = 1.0,
) -> torch.Tensor:
    """Images [R, K, C, H, W]: image (i, j) uses the styles of ``z_rows[i]`` except on the ``band`` layers
    (a name from ``STYLE_BANDS`` or explicit ws indices), which take the styles of ``z_cols[j]``.

    Conditional generators map each source with its own class (default: balanced, ``i % num_classes``),
    so mixing coarse styles can carry the class over. Uses the generator's ``mapping`` and ``synthesis``
    directly; ``truncation_psi`` works as in ``forward``.
    """
    _require_style(generator)
    num_ws = int(generator.synthesis.num_ws)
    if isinstance(band, str) and band not in STYLE_BANDS:
        raise ValueError(f"band must be one of {STYLE_BANDS} or ws indices, got {band!r}")
    layers = style_bands(generator)[band] if isinstance(band, str) else [int(i) for i in band]
    if any(i < 0 or i >= num_ws for i in layers):
        raise ValueError(f"ws indices must be in [0, {num_ws}), got {layers}")
    device = _device(generator)
    n_rows, n_cols = len(z_rows), len(z_cols)

    def w_of(z: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        if generator.num_classes and cls is None:
            cls = torch.arange(len(z)) % generator.num_classes
        w = generator.mapping(z.to(device), None if cls is None else cls.to(device))
        return generator.w_avg + truncation_psi * (w - generator.w_avg) if truncation_psi != 1.0 else w

    w_r, w_c = w_of(z_rows, class_rows), w_of(z_cols, class_cols)  # [R, W], [K, W]
    ws = w_r[:, None, None, :].expand(n_rows, n_cols, num_ws, -1).clone()
    ws[:, :, layers] = w_c[None, :, None, :]
    # forward() is tanh(synthesis(ws)); the test checks this decomposition still equals forward().
    images = torch.tanh(generator.synthesis(ws.reshape(n_rows * n_cols, num_ws, -1)))
    return images.reshape(n_rows, n_cols, *images.shape[1:])


# ---------------------------------------------------------------------------------------------- strips
@torch.no_grad()
def interpolation_grid(
    generator: Generator, rows: int = 4, steps: int = 10, seed: int = 0, spherical: bool = True
) -> torch.Tensor:
    """[rows * steps, C, H, W]: one interpolation per row between two seeded latents; conditional models
    use class ``row % num_classes`` for row ``row``."""
    z, _ = generator.sample_inputs(2 * rows, seed=seed)
    out = []
    for r in range(rows):
        cls = r % generator.num_classes if generator.num_classes else None
        out.append(interpolate(generator, z[2 * r], z[2 * r + 1], steps, spherical, cls).float().cpu())
    return torch.cat(out)


def save_interpolation_strip(
    generator: Generator,
    path: str | Path,
    rows: int = 4,
    steps: int = 10,
    seed: int = 0,
    spherical: bool = True,
) -> Path:
    """PNG of ``interpolation_grid`` (``steps`` images per row); returns the path."""
    from .viz import save_grid

    images = interpolation_grid(generator, rows, steps, seed, spherical)
    return save_grid(images.clamp(-1, 1).numpy(), path, nrow=steps)


def save_style_mixing_strip(
    generator: Generator, path: str | Path, n_rows: int = 3, n_cols: int = 5, seed: int = 0
) -> Path:
    """PNG in the layout of the StyleGAN paper's Fig. 3: the top row shows the column sources; then, per
    band (coarse, middle, fine), ``n_rows`` rows that start with the row source and continue with its
    mixes taking that band from each column source. Empty corners are black."""
    from .viz import save_grid

    z, y = generator.sample_inputs(n_rows + n_cols, seed=seed)
    z_rows, z_cols = z[:n_rows], z[n_rows:]
    y_rows, y_cols = (None, None) if y is None else (y[:n_rows], y[n_rows:])
    with torch.no_grad():
        src_rows = generator(
            z_rows.to(_device(generator)), None if y_rows is None else y_rows.to(_device(generator))
        )
        src_cols = generator(
            z_cols.to(_device(generator)), None if y_cols is None else y_cols.to(_device(generator))
        )
    blank = -torch.ones_like(src_rows[:1]).cpu()
    tiles = [blank, src_cols.cpu()]
    for band in STYLE_BANDS:
        mixed = style_mix(generator, z_rows, z_cols, band, y_rows, y_cols).cpu()
        for i in range(n_rows):
            tiles += [src_rows[i : i + 1].cpu(), mixed[i]]
    return save_grid(torch.cat(tiles).clamp(-1, 1).float().numpy(), path, nrow=n_cols + 1)
