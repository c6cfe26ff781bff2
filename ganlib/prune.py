"""Ablation and structural removal of generator units (the "prune" half of GAN Dissection).

A *unit* is one output channel of a named layer. ``ablate(G, units)`` zeroes units with forward hooks, as
Bau et al. do; ``prune_units(G, units)`` deletes them: the producing conv's output channels, the per-channel
norm state between it and the unit (BatchNorm running stats, affine or per-class gain/bias embeddings) and
the consuming conv's input channels. Pruning is only offered where it is *exact*: the pruned generator's
output equals the ablated one's. That holds when every path from the unit to the rest of the network is a
conv input (a zero input channel contributes nothing), so:

- DCGAN ``blocks.i`` (conv -> CBN -> ReLU, read only by the next conv): prunable.
- SNGAN ``blocks.i.norm2`` (the residual block's inner width: conv1 -> CBN -> ReLU -> conv2): prunable.
  Zeroing the CBN output is zeroing conv2's input, because ReLU(0) = 0.
- SNGAN ``blocks.i`` (a block output): refused. It feeds the skip sum and the next block's BatchNorm, which
  turns a zero into a non-zero constant, so removing the channel is not the same function.
- StyleGAN-lite ``synthesis.layers.i`` (modulated conv -> noise -> bias -> lrelu, read only by the next
  modulated conv or the modulated to-RGB): prunable, with one difference in what "ablate" means. The next
  layer's weight demodulation sums over all of its input channels, a zeroed one included, so zeroing the
  activation alone is not removing the channel. Ablation therefore zeroes the unit's *style* in the
  consumer (its modulation scale s_i), which removes it from both the convolution and the demodulation:
  exactly what deleting the input channel does. The consumer's equalized-lr gain 1/sqrt(fan_in) changes
  with its fan-in, so the kept weights are rescaled to keep the function.

The pruned widths are stored in ``spec.g_layer_widths``, which the family constructors honour, so
``ganlib.models.load_generator`` builds the smaller model directly (models know nothing of pruning).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .models.base import Generator
from .models.conditioning import ConditionalBatchNorm2d
from .models.stylegan_lite import EqualLinear, ModulatedConv

Units = Mapping[str, Sequence[int]]


class PruneError(ValueError):
    """The layer cannot be pruned exactly (or the request is malformed); the message says why."""


@dataclass(frozen=True)
class Site:
    """Where a layer's units live: ``producer`` makes the channels, ``norms`` carry per-channel state,
    ``consumers`` read them as input channels. ``layer`` is the module whose output ablation zeroes."""

    layer: str
    producer: str
    norms: tuple[str, ...]
    consumers: tuple[str, ...]
    modulated: bool = False  # producer and consumer are StyleGAN ModulatedConvs

    @property
    def ablate_at(self) -> str:
        """The module whose output ablation zeroes: the layer, or for a modulated consumer its style affine
        (see the module docstring)."""
        return f"{self.consumers[0]}.affine" if self.modulated else self.layer


# --- which layers of which family can be pruned exactly --------------------------------------------------


def _dcgan_sites(g: nn.Module) -> dict[str, Site]:
    n = len(g.blocks)
    return {
        f"blocks.{i}": Site(
            f"blocks.{i}",
            f"blocks.{i}.conv",
            (f"blocks.{i}.norm",),
            (f"blocks.{i + 1}.conv" if i + 1 < n else "to_rgb",),
        )
        for i in range(n)
    }


def _sngan_sites(g: nn.Module) -> dict[str, Site]:
    return {
        f"blocks.{i}.norm2": Site(
            f"blocks.{i}.norm2", f"blocks.{i}.conv1", (f"blocks.{i}.norm2",), (f"blocks.{i}.conv2",)
        )
        for i in range(len(g.blocks))
    }


def _style_sites(g: nn.Module) -> dict[str, Site]:
    n = len(g.synthesis.layers)
    return {
        f"synthesis.layers.{i}": Site(
            f"synthesis.layers.{i}",
            f"synthesis.layers.{i}.conv",
            (),
            (f"synthesis.layers.{i + 1}.conv" if i + 1 < n else "synthesis.to_rgb.conv",),
            modulated=True,
        )
        for i in range(n)
    }


SITES: dict[str, Callable[[nn.Module], dict[str, Site]]] = {
    "dcgan": _dcgan_sites,
    "sngan": _sngan_sites,
    "stylegan_lite": _style_sites,
}

_WHY_NOT: dict[str, Callable[[str], str | None]] = {
    "sngan": lambda layer: (
        f"'{layer}' is a residual block output: it feeds the skip sum and the next block's BatchNorm (which maps "
        f"a zeroed channel to a non-zero constant), so removing it would change the output. Prune the block's "
        f"inner width instead: '{layer}.norm2'."
        if layer.startswith("blocks.") and layer.count(".") == 1
        else None
    )
}


def prunable_layers(g: Generator) -> list[str]:
    """The layers of ``g`` whose units ``prune_units`` can remove exactly ([] for unsupported families)."""
    fam = g.spec.family
    return list(SITES[fam](g)) if fam in SITES else []


def site(g: Generator, layer: str) -> Site:
    """The prune site of ``layer``, after checking the modules are what exact pruning assumes."""
    fam = g.spec.family
    if fam not in SITES:
        raise PruneError(f"pruning supports the families {sorted(SITES)}; '{fam}' has no exact pruning rule")
    sites = SITES[fam](g)
    if layer not in sites:
        why = _WHY_NOT.get(fam, lambda _: None)(layer)
        raise PruneError(
            why or f"cannot prune '{layer}' of a {fam} generator exactly; prunable layers: {sorted(sites)}"
        )
    s = sites[layer]
    modules = dict(g.named_modules())
    if s.modulated:
        for name in (s.producer, *s.consumers):
            if not isinstance(modules.get(name), ModulatedConv):
                raise PruneError(
                    f"'{layer}': expected '{name}' to be a ModulatedConv, got {type(modules.get(name)).__name__}"
                )
        return s
    for name in (s.producer, *s.consumers):
        m = modules.get(name)
        if not isinstance(m, nn.Conv2d | nn.ConvTranspose2d) or m.groups != 1:
            raise PruneError(f"'{layer}': expected '{name}' to be an ungrouped conv, got {type(m).__name__}")
        if hasattr(m, "weight_orig") or nn.utils.parametrize.is_parametrized(m):
            # Spectral norm divides by sigma(W); deleting rows of W changes sigma, so it would not be exact.
            raise PruneError(
                f"'{layer}': '{name}' has a weight reparametrisation (spectral norm?); not exact"
            )
    for name in s.norms:
        if not isinstance(modules.get(name), ConditionalBatchNorm2d | nn.BatchNorm2d):
            raise PruneError(
                f"'{layer}': expected '{name}' to be a BatchNorm, got {type(modules.get(name)).__name__}"
            )
    return s


def layer_width(g: nn.Module, layer: str) -> int:
    """Number of units (output channels) of a prunable layer."""
    conv = g.get_submodule(site(g, layer).producer)
    return _out_dim_size(conv)


# --- ablation ---------------------------------------------------------------------------------------------


def _index(units: Sequence[int], width: int, layer: str) -> torch.Tensor:
    idx = sorted({int(u) for u in units})
    if idx and (idx[0] < 0 or idx[-1] >= width):
        raise PruneError(f"'{layer}' has {width} units; got unit indices {idx}")
    return torch.tensor(idx, dtype=torch.long)


@contextmanager
def ablate(g: nn.Module, units: Units) -> Iterator[nn.Module]:
    """Zero the given units (channels of each named layer's output) inside the ``with`` block.

    Works on any layer with a tensor output ``[N, C, ...]``, prunable or not; a prunable layer is ablated
    where removing the units gives the same function (``ablation_module``). Hooks are removed on exit.
    """
    modules = dict(g.named_modules())
    handles = []
    try:
        for layer, us in units.items():
            if layer not in modules:
                raise PruneError(f"no layer '{layer}' in {type(g).__name__}")
            target = ablation_module(g, layer)

            def hook(
                _m: nn.Module, _inp: object, out: torch.Tensor, _layer: str = layer, _us=us
            ) -> torch.Tensor:
                idx = _index(_us, out.shape[1], _layer).to(out.device)
                return out.index_fill(1, idx, 0.0)

            handles.append(modules[target].register_forward_hook(hook))
        yield g
    finally:
        for h in handles:
            h.remove()


# --- structural removal -----------------------------------------------------------------------------------


def ablation_module(g: nn.Module, layer: str) -> str:
    """The module whose output is zeroed to ablate ``layer``'s units: the layer itself, except where exact
    removal needs another point (a style layer: its consumer's style affine). Any layer may be ablated."""
    fam = getattr(getattr(g, "spec", None), "family", None)
    sites = SITES[fam](g) if fam in SITES else {}
    return sites[layer].ablate_at if layer in sites else layer


def _out_dim(conv: nn.Module) -> int:
    # Conv2d and ModulatedConv weights are [out, in, kh, kw]; ConvTranspose2d weights are [in, out, kh, kw].
    return 1 if isinstance(conv, nn.ConvTranspose2d) else 0


def _out_dim_size(conv: nn.Module) -> int:
    return conv.weight.shape[_out_dim(conv)]


def _keep_param(p: nn.Parameter | None, dim: int, keep: torch.Tensor) -> nn.Parameter | None:
    if p is None:
        return None
    return nn.Parameter(
        p.detach().index_select(dim, keep.to(p.device)).clone(), requires_grad=p.requires_grad
    )


def _keep_conv(conv: nn.Conv2d | nn.ConvTranspose2d, keep: torch.Tensor, output: bool) -> None:
    dim = _out_dim(conv) if output else 1 - _out_dim(conv)
    conv.weight = _keep_param(conv.weight, dim, keep)
    if output:
        conv.bias = _keep_param(conv.bias, 0, keep)
        conv.out_channels = len(keep)
    else:
        conv.in_channels = len(keep)


def _keep_norm(norm: nn.Module, keep: torch.Tensor) -> None:
    bn = norm.bn if isinstance(norm, ConditionalBatchNorm2d) else norm
    for name in ("running_mean", "running_var"):
        buf = getattr(bn, name)
        if buf is not None:
            setattr(bn, name, buf.index_select(0, keep.to(buf.device)).clone())
    if bn.affine:
        bn.weight = _keep_param(bn.weight, 0, keep)
        bn.bias = _keep_param(bn.bias, 0, keep)
    bn.num_features = len(keep)
    if isinstance(norm, ConditionalBatchNorm2d) and norm.num_classes:
        for emb in (norm.gain, norm.bias):  # per-class tables [num_classes, C]: drop columns
            emb.weight = _keep_param(emb.weight, 1, keep)
            emb.embedding_dim = len(keep)


def _cut_modulated(g: nn.Module, s: Site, keep: torch.Tensor) -> None:
    producer = g.get_submodule(s.producer)
    producer.weight = _keep_param(producer.weight, 0, keep)
    layer = g.get_submodule(s.layer)
    layer.bias = _keep_param(layer.bias, 0, keep)
    for name in s.consumers:
        conv = g.get_submodule(name)
        kernel = conv.weight[0, 0].numel()
        new_gain = 1.0 / math.sqrt(len(keep) * kernel)  # what the constructor computes for the new fan-in
        conv.weight = _keep_param(conv.weight, 1, keep)
        with torch.no_grad():
            conv.weight.mul_(conv.w_gain / new_gain)  # same effective weights as before
        conv.w_gain = new_gain
        conv.affine.weight = _keep_param(conv.affine.weight, 0, keep)  # one style per input channel
        conv.affine.bias = _keep_param(conv.affine.bias, 0, keep)


def _cut(g: nn.Module, s: Site, keep: torch.Tensor) -> None:
    if s.modulated:
        _cut_modulated(g, s, keep)
        return
    _keep_conv(g.get_submodule(s.producer), keep, output=True)
    for name in s.norms:
        _keep_norm(g.get_submodule(name), keep)
    for name in s.consumers:
        _keep_conv(g.get_submodule(name), keep, output=False)


def prune_units(g: Generator, units: Units) -> Generator:
    """A new, smaller generator without ``units`` ({layer: [unit indices]}); ``g`` is left untouched.

    Its output equals ``g``'s under ``ablate(g, units)``; its spec records the new widths so it round-trips
    through a checkpoint. Raises ``PruneError`` for a layer that cannot be pruned exactly.
    """
    checked = {layer: site(g, layer) for layer in units}  # refuse before copying anything
    out = copy.deepcopy(g)
    layers = prunable_layers(g)  # one per block, in block order: the entries of spec.g_layer_widths
    widths = [layer_width(g, layer) for layer in layers]
    for layer, s in checked.items():
        width = layer_width(out, layer)
        drop = set(_index(units[layer], width, layer).tolist())
        if len(drop) == width:
            raise PruneError(f"refusing to remove all {width} units of '{layer}'")
        _cut(out, s, torch.tensor([c for c in range(width) if c not in drop], dtype=torch.long))
        widths[layers.index(layer)] = width - len(drop)
    # The new widths are ordinary spec fields the constructors honour: the checkpoint rebuilds as is.
    out.spec = dataclasses.replace(g.spec, g_layer_widths=tuple(widths))
    return out


# --- size ------------------------------------------------------------------------------------------------


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def count_flops(g: Generator) -> int:
    """FLOPs (2 x multiply-adds) of one sample through the convs and linear layers; norms/activations ignored."""
    macs = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.Linear):
            macs += m.in_features * m.out_features
        elif isinstance(m, EqualLinear):
            macs += m.weight.numel()
        elif isinstance(m, nn.ConvTranspose2d):  # every input pixel scatters a full kernel
            macs += inp[0][0].numel() * (m.out_channels // m.groups) * m.weight[0, 0].numel()
        elif isinstance(m, ModulatedConv):  # a plain conv on the modulated input (its affine counts apart)
            macs += out[0].numel() * m.weight[0].numel()
        else:  # Conv2d: every output pixel gathers a full kernel
            macs += out[0].numel() * (m.in_channels // m.groups) * m.weight[0, 0].numel()

    handles = [
        m.register_forward_hook(hook)
        for m in g.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | ModulatedConv | EqualLinear)
    ]
    was_training = g.training
    try:
        g.eval()
        z, y = g.sample_inputs(1, seed=0, device=next(g.parameters()).device)
        g(z, y)
    finally:
        g.train(was_training)
        for h in handles:
            h.remove()
    return 2 * macs
