"""Training and TTF losses: L1 under the cPSNR's brightness-bias removal and shift search, and the
Laplace negative log-likelihood of the uncertainty head.
"""
from __future__ import annotations

import math

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


def grid_band_filter(scale: int, length: int | None = None) -> torch.Tensor:
    """1-D band-pass ``(L,)`` around the stride-``scale`` frequencies ``m / scale`` (``m = 1 .. scale-1``).

    ``sum_m cos(2 pi m n / scale) = scale [n mod scale = 0] - 1`` (a comb minus its mean) under a
    Hann window, its DC response removed: it passes a pattern repeating every ``scale`` pixels and
    barely touches the low frequencies a blurred, decimated frame can see.
    """
    n_half = length // 2 if length else 2 * scale
    n = torch.arange(-n_half, n_half + 1, dtype=torch.float64)
    comb = scale * (n.remainder(scale) == 0).double() - 1
    win = 0.5 + 0.5 * torch.cos(math.pi * n / (n_half + 1))
    h = win * comb
    h = h - win * (h.sum() / win.sum())
    return (h / h.abs().sum()).float()


def grid_band_l1(delta: torch.Tensor, scale: int, weights: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Mean L1 of the stride-``scale`` band of ``delta`` ``(B, H, W)`` along columns and rows,
    weighted ``weights`` = (vertical, horizontal) (see :func:`unseen_grid_share`).

    TTF uses it on the change it makes to the output: when every frame samples the scene on the
    same grid (co-registered products, e.g. any Landsat or Sentinel-2 series), a pattern repeating
    every ``scale`` output pixels aliases onto the frames' low frequencies identically in all of them,
    so the data term alone lets finetuning trade it for a better fit: a grid texture (BENCHMARKS.md).
    """
    h = grid_band_filter(scale).to(delta)
    k = h.numel()
    x = delta[:, None]
    along_y = torch.nn.functional.conv2d(x, h.view(1, 1, k, 1))
    along_x = torch.nn.functional.conv2d(x, h.view(1, 1, 1, k))
    return weights[0] * along_y.abs().mean() + weights[1] * along_x.abs().mean()


def unseen_grid_share(moves: torch.Tensor | None, scale: int) -> tuple[float, float]:
    """How unseen the stride-``scale`` band is by frames at ``moves`` ``(n, 2)`` (dy, dx, output px),
    per axis in [0, 1]: the squared phase coherence ``|mean_t exp(2 pi i m d_t / scale)|^2`` (the
    largest over ``m = 1 .. scale-1``).

    1 when every frame samples the output on the same phase (one frame, or co-gridded dates): the
    band is then confounded with the frames' low frequencies. About ``1 / n`` when the sub-pixel
    phases are spread at random, so that the frames together measure it. ``moves`` None: (1, 1).
    """
    if moves is None or len(moves) < 2:
        return 1.0, 1.0
    d = moves.detach().double().cpu()
    share = []
    for axis in range(2):
        share.append(max(float(torch.exp(1j * 2 * math.pi * m * d[:, axis] / scale).mean().abs()) ** 2
                         for m in range(1, scale)))
    return share[0], share[1]
