"""Semantic inpainting by latent optimisation (Yeh et al. 2017, "Semantic Image Inpainting with Deep
Generative Models").

Given an image x and a binary mask M (1 = known pixel, 0 = hole), search the latent z whose image agrees
with x on the known pixels and that the discriminator finds realistic:

    loss(z) = || M * G(z) - M * x ||_1  +  lam * log(1 - D(G(z)))        (contextual + perceptual)

then keep the known pixels and take the hole from the generator: ``M * x + (1 - M) * G(z_hat)``.
With a logit ``l = D(G(z))``, log(1 - sigmoid(l)) = -softplus(l). The contextual loss is a *sum* over
pixels (not a mean), so ``lam`` has the paper's scale (0.003).

Several random restarts run side by side (one batch), each an Adam walk on z, with z renormalised onto the
sphere of radius sqrt(z_dim) after every step (where Gaussian latents live; the paper clipped its uniform
z to [-1, 1] for the same reason). Conditional generators either take a ``class_id`` or search all classes
(every class gets its own restarts). The candidate with the lowest final loss wins, per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models.base import Discriminator, Generator


@dataclass
class InpaintResult:
    completed: torch.Tensor  # [N, C, H, W] in [-1, 1]: known pixels of x, the hole from G(z_hat)
    generated: torch.Tensor  # [N, C, H, W]: G(z_hat) everywhere
    z: torch.Tensor  # [N, z_dim]: the winning latents
    class_id: torch.Tensor | None  # [N]: the classes used (searched or given); None when unconditional
    contextual: torch.Tensor  # [N]: the winners' contextual loss (L1 sum over known pixels)
    perceptual: torch.Tensor  # [N]: the winners' log(1 - D(G(z))); zeros without a discriminator


def contextual_loss(fake: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N]: the L1 distance on the known pixels, summed per image."""
    return (mask * (fake - image)).abs().flatten(1).sum(1)


def perceptual_loss(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - D(G(z))) from D's logits, computed stably as -softplus(logits)."""
    return -F.softplus(logits.reshape(-1))


def mean_fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The naive baseline: every hole pixel gets the mean of the image's known pixels (per channel)."""
    mask = mask.expand_as(image)
    known = (image * mask).flatten(2).sum(2) / mask.flatten(2).sum(2).clamp_min(1)
    return mask * image + (1 - mask) * known[:, :, None, None]


def _sphere(z: torch.Tensor) -> torch.Tensor:
    return z * (z.shape[1] ** 0.5 / z.norm(dim=1, keepdim=True).clamp_min(1e-8))


def inpaint(
    generator: Generator,
    image: torch.Tensor,
    mask: torch.Tensor,
    *,
    discriminator: Discriminator | None = None,
    lam: float = 0.003,
    steps: int = 300,
    restarts: int = 8,
    lr: float = 0.05,
    class_id: int | torch.Tensor | None = None,
    seed: int = 0,
) -> InpaintResult:
    """Complete ``image`` ([N, C, H, W] in [-1, 1]) where ``mask`` ([N or 1, 1 or C, H, W], 1 = known) is 0.

    ``discriminator``: the one trained with the generator (None, or ``lam=0``, drops the perceptual term).
    ``class_id``: for conditional generators, one class or one per image; None searches all classes.
    Both networks are run in eval mode (BatchNorm must not couple the candidates) and restored after; their
    weights get no gradients.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be [N, C, H, W], got {list(image.shape)}")
    device = next(generator.parameters()).device
    n = image.shape[0]
    x = image.to(device, torch.float32)
    m = (mask.to(device, torch.float32) > 0.5).float().expand_as(x)
    k = generator.num_classes
    if k and class_id is not None:
        given = torch.as_tensor(class_id, dtype=torch.long, device=device).reshape(-1)
        if given.numel() not in (1, n) or given.min() < 0 or given.max() >= k:
            raise ValueError(f"class_id must be one id or {n} ids in [0, {k}), got {given.tolist()}")
        cls = given.expand(n)[:, None]
    elif k:
        cls = torch.arange(k, device=device)[None, :].expand(n, k)  # search: every class for every image
    elif class_id is not None:
        raise ValueError("this generator is unconditional: class_id must be None")
    else:
        cls = None
    per_image = restarts * (cls.shape[1] if cls is not None else 1)
    # Candidates are laid out image-major: [n, per_image] flattened.
    cand_cls = None if cls is None else cls.repeat_interleave(restarts, dim=1).reshape(-1)
    xs, ms = x.repeat_interleave(per_image, 0), m.repeat_interleave(per_image, 0)
    gen = torch.Generator().manual_seed(seed)
    z = _sphere(torch.randn(n * per_image, generator.z_dim, generator=gen)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    use_d = discriminator is not None and lam != 0

    def losses(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fake = generator(z, cand_cls)
        ctx = contextual_loss(fake, xs, ms)
        per = perceptual_loss(discriminator(fake, cand_cls)) if use_d else torch.zeros_like(ctx)
        return fake, ctx, per

    modes = [(net, net.training) for net in (generator, discriminator) if net is not None]
    try:
        for net, _ in modes:
            net.eval()
        for _ in range(steps):
            _, ctx, per = losses(z)
            # Gradients for z only: the networks' .grad stay untouched.
            (z.grad,) = torch.autograd.grad((ctx + lam * per).sum(), [z])
            opt.step()
            with torch.no_grad():
                z.copy_(_sphere(z))
        with torch.no_grad():
            fake, ctx, per = losses(z)
    finally:
        for net, was_training in modes:
            net.train(was_training)

    best = (ctx + lam * per).reshape(n, per_image).argmin(1)
    pick = torch.arange(n, device=device) * per_image + best
    generated = fake[pick].detach()
    return InpaintResult(
        completed=m * x + (1 - m) * generated,
        generated=generated,
        z=z.detach()[pick],
        class_id=None if cand_cls is None else cand_cls[pick],
        contextual=ctx[pick].detach(),
        perceptual=per[pick].detach(),
    )
