"""Where each frame agrees with the reference date: per-pixel weights for robust fusion.

Real dates differ where the land changed (a mowed meadow, a greening crop, undetected cloud), and
IBP fits every frame, so a changed field of one date is painted into the reference date's output.
The weight of an LR pixel of frame ``t`` says whether the frame shows there what the reference
shows: the frame is compared with the reference moved by the frame's registration, through a local
gain and bias (a Gaussian window of :data:`SIGMA` LR px, so a field that changed brightness as a
whole is not a change of land), Tukey-reweighted :data:`REWEIGHTS` times; the residual is smoothed
(:data:`SMOOTH` LR px), because aliasing and the frames' different blurs leave thin residuals of
either sign along edges while a changed field leaves a patch of one sign, and judged against the
frame's robust spread at :data:`C` spreads (a mild constant: on frames cut from one image the weights
stay near 1). The reference keeps full weight: the user asks for that date.

Measured (BENCHMARKS.md, robust fusion): IBP with these weights gains 0.21 dB on the real-date
benchmark (up to 0.71 on a stack, none lost) and loses at most 0.03 dB on a static stack.

Every operation is local except the robust spreads, which a caller that works in tiles measures once
(on the registration window) and passes in: a pixel's weight then depends on the frames within
:func:`halo` LR px only, so tiles match the untiled result.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..degradation.operators import shift_images
from .registration import robust_scale
from ..shapes import check_shape

SIGMA = 4.0  # LR px: the local photometric fit's Gaussian window (a field or two at 30 m)
SMOOTH = 1.5  # LR px: the residual's smoothing
C = 12.0  # robust spreads of a frame's smoothed residual at which its weight reaches 0 (Tukey)
REWEIGHTS = 5  # Tukey reweightings of the local fit


def _radius(sigma: float) -> int:
    return int(3 * sigma + 1)


def halo(shifts: torch.Tensor | None) -> int:
    """LR px around a pixel that its weight depends on (each reweighting widens the footprint by the
    fit's and the smoothing's radii; the moved reference adds the shift and the cubic's reach)."""
    reach = 0 if shifts is None or shifts.numel() == 0 else math.ceil(float(shifts.abs().max()))
    return REWEIGHTS * (_radius(SIGMA) + _radius(SMOOTH)) + reach + 2


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(T, h, w)``, replicate-padded; as weighted sums of shifted slices, which on CPU
    beat a one-channel conv2d (im2col) about twofold."""
    r = _radius(sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).tolist()
    h, w = x.shape[-2:]
    p = F.pad(x[:, None], (r, r, 0, 0), mode="replicate")[:, 0]
    y = p[..., :w] * g[0]
    for k in range(1, 2 * r + 1):
        y.add_(p[..., k:k + w], alpha=g[k])
    p = F.pad(y[:, None], (0, 0, r, r), mode="replicate")[:, 0]
    out = p[..., :h, :] * g[0]
    for k in range(1, 2 * r + 1):
        out.add_(p[..., k:k + h, :], alpha=g[k])
    return out


def agreement_weights(
    frames: torch.Tensor,
    valid: torch.Tensor,
    ref: int,
    shifts: torch.Tensor,
    reference_mean: float,
    spreads: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``(T, h, w)`` in [0, 1] of the LR pixels of ``frames`` ``(T, h, w)`` (validity ``valid``):
    how well frame ``t`` agrees with frame ``ref`` moved by ``shifts`` ``(T, 2)`` (LR px, the
    registration's); 1 for the reference and wherever the two cannot be compared. ``reference_mean``
    fills the reference's invalid pixels before it is moved (the whole stack's, so tiles agree).
    ``spreads`` ``(REWEIGHTS + 1, T)``: the measured constants to judge by (None: measured here): each
    frame's ridge of the local fit, then its robust spread at each reweighting. Returns the weights
    and the constants used."""
    check_shape("frames", frames, "T, h, w")
    check_shape("valid", valid, "T, h, w", like=frames)
    T, h, w = frames.shape
    # in float32 about the reference's mean: the local moments' differences (variance, covariance) keep 6-7 digits of
    # the local contrast, and the blurs run several times faster than in float64 (the weights moved by < 1e-3 and
    # IBP's output by 1e-5 of its range)
    f = frames.float() - float(reference_mean)
    reference = torch.where(valid[ref], f[ref], torch.zeros_like(f[ref]))
    moved = shift_images(reference.expand(T, h, w), shifts.float())
    moved_valid = shift_images(valid[ref].float().expand(T, h, w), shifts.float(), mode="bilinear") > 0.999
    both = valid & moved_valid
    mask = both.float()
    fit = mask
    smooth_n = _gauss(mask, SMOOTH).clamp(min=1e-9)
    ridge = None if spreads is None else spreads[0].float()
    measured = []
    weights = torch.ones_like(f)
    for k in range(REWEIGHTS):
        n = _gauss(fit, SIGMA).clamp(min=1e-9)
        mean_m, mean_f = _gauss(fit * moved, SIGMA) / n, _gauss(fit * f, SIGMA) / n
        var = _gauss(fit * moved ** 2, SIGMA) / n - mean_m ** 2
        cov = _gauss(fit * moved * f, SIGMA) / n - mean_m * mean_f
        if ridge is None:  # a small ridge keeps flat windows (water, shadow) at a gain near 0, not noise
            ridge = 1e-3 * var.mean(dim=(1, 2)) + 1e-30
        gain = cov / (var + ridge[:, None, None])
        res = f - (mean_f + gain * (moved - mean_m))
        smooth = _gauss(res * mask, SMOOTH) / smooth_n
        spread = robust_scale(smooth, both) if spreads is None else spreads[k + 1].float()
        measured.append(spread)
        u = smooth / (C * spread[:, None, None])
        weights = (1 - u ** 2).clamp(min=0) ** 2
        fit = mask * weights
    weights = torch.where(both, weights, torch.ones_like(weights))
    weights[ref] = 1.0
    return weights.to(frames.dtype), torch.stack([ridge] + measured).to(frames.dtype)
