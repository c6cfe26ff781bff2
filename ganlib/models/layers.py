"""Layers shared by the model families: spectral normalisation and minibatch discrimination."""

from __future__ import annotations

import torch
from torch import nn


def spectral_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of a layer's weight, or the layer unchanged."""
    return nn.utils.spectral_norm(module) if enabled else module


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, sec. 3.2: lets D see how close a sample is to the others in its batch.

    M = h T (B kernels of dimension C); c_b(i, j) = exp(-||M_i,b - M_j,b||_1); o(x_i)_b = sum_{j != i} c_b(i, j).
    Returns [h, o] (features + B), so a collapsed batch (all samples alike) is easy for D to spot.
    """

    def __init__(self, in_features: int, num_kernels: int = 16, kernel_dim: int = 8) -> None:
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * 0.1)

    @property
    def out_features(self) -> int:
        return self.T.shape[0] + self.num_kernels

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = (h @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # [N, B, C]
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # [N, N, B]
        o = torch.exp(-l1).sum(1) - 1.0  # drop the j == i term (exp(0) = 1)
        return torch.cat([h, o], dim=1)
