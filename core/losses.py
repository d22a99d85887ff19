"""Training and TTF losses: L1 under the cPSNR's brightness-bias removal and shift search, and the
Laplace negative log-likelihood of the uncertainty head.
"""
from __future__ import annotations

import torch


def shift_search_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Per-sample L1 after removing the mean bias, minimised over shifts up to ``max_shift``.

    ``pred``, ``target``, ``mask``: ``(B, H, W)``. The target is cropped by ``max_shift``
    on each border and compared with every shifted crop of ``pred`` (as cPSNR does).
    """
    c = max_shift
    B, H, W = target.shape
    t = target[:, c:H - c, c:W - c]
    m = mask[:, c:H - c, c:W - c].float()
    n = m.sum(dim=(1, 2)).clamp(min=1)
    losses = []
    for u in range(2 * c + 1):
        for v in range(2 * c + 1):
            p = pred[:, u:u + H - 2 * c, v:v + W - 2 * c]
            diff = (t - p) * m
            bias = diff.sum(dim=(1, 2)) / n
            losses.append(((t - p - bias[:, None, None]).abs() * m).sum(dim=(1, 2)) / n)
    return torch.stack(losses, dim=1).min(dim=1).values


def laplace_nll(pred: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean Laplace negative log-likelihood (bias-corrected) per sample."""
    m = mask.float()
    n = m.sum(dim=(1, 2)).clamp(min=1)
    bias = ((target - pred) * m).sum(dim=(1, 2)) / n
    ls = log_scale.clamp(-7, 7)
    nll = (target - pred - bias[:, None, None]).abs() * torch.exp(-ls) + ls
    return (nll * m).sum(dim=(1, 2)) / n
