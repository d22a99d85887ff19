"""Classic multi-frame super-resolution: registered mean of bicubic, and IBP.

Both work on a stack of LR frames ``(T, h, w)`` with validity masks and return
an HR image ``(s*h, s*w)`` plus its validity (HR pixels that no valid LR pixel
of any frame covers are invalid).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..convention import default_kernel_size
from .agreement import agreement_weights, halo as agreement_halo
from ..degradation.operators import gaussian_kernels, shift_images, upsample_bicubic
from ..progress import Monitor, ensure_monitor
from ..shapes import check_shape
from .shift_blur import ShiftBlur, margin_px
from ..io.stack_ops import temporal_fill
from ..io.windows import IBP_HALO, StackStats, run_tiles

# Isotropic PSF assumed by IBP when no kernel is known: the middle of the
# plausible sigma range of degradation.SIGMA_FRACTION_RANGE.
DEFAULT_PSF_SIGMA_FRACTION = 0.55


def _shift_stacks(x: torch.Tensor, shifts: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """shift_images over ``(..., T, H, W)`` with ``(..., T, 2)`` shifts."""
    return shift_images(x.reshape(-1, *x.shape[-2:]), shifts.reshape(-1, 2), mode).reshape(x.shape)


def _aligned_upsampled(frames: torch.Tensor, valid: torch.Tensor, scale: int, shifts: torch.Tensor | None,
                       frame_means: torch.Tensor | None = None):
    up = upsample_bicubic(temporal_fill(frames, valid, frame_means), scale)
    w = valid.to(frames.dtype).repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    if shifts is not None:
        back = -shifts.to(frames.dtype) * scale
        up = _shift_stacks(up, back)
        w = _shift_stacks(w, back, mode="bilinear")
    return up, w


def mean_bicubic(frames: torch.Tensor, valid: torch.Tensor, scale: int, shifts: torch.Tensor | None = None,
                 frame_means: torch.Tensor | None = None) -> torch.Tensor:
    """Average of the bicubically upsampled frames, each moved back onto the reference grid
    (``frame_means``: see :func:`stack_ops.temporal_fill`)."""
    up, w = _aligned_upsampled(frames, valid, scale, shifts, frame_means)
    wsum = w.sum(dim=-3)
    mean_all = up.mean(dim=-3)
    return torch.where(wsum > 1e-6, (up * w).sum(dim=-3) / wsum.clamp(min=1e-6), mean_all)


def reference_bicubic(frames: torch.Tensor, valid: torch.Tensor, ref: int, scale: int,
                      frame_means: torch.Tensor | None = None) -> torch.Tensor:
    """The reference date upsampled alone ``(s*h, s*w)`` from ``frames`` ``(T, h, w)``: what a user has without
    multi-frame super-resolution. Its invalid pixels take the other dates' mean there (:func:`stack_ops.temporal_fill`)."""
    return upsample_bicubic(temporal_fill(frames, valid, frame_means)[ref], scale)


def default_psf(scale: int, size: int | None = None) -> torch.Tensor:
    """Isotropic Gaussian PSF assumed when no kernel was estimated."""
    sigma = DEFAULT_PSF_SIGMA_FRACTION * scale
    return gaussian_kernels(sigma, sigma, 0.0, size or default_kernel_size(scale), scale)


def ibp(
    frames: torch.Tensor,
    valid: torch.Tensor,
    scale: int,
    shifts: torch.Tensor | None = None,
    kernels: torch.Tensor | None = None,
    iterations: int = 40,
    step: float = 1.0,
    monitor: Monitor | None = None,
    init: torch.Tensor | None = None,
    frame_means: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Irani-Peleg iterative back-projection.

    Starts from ``init`` (default :func:`mean_bicubic`) and repeats ``x += step * A^T(m * (y - A x)) / A^T m``
    where ``A_t`` shifts, blurs and decimates (:func:`degradation.degrade` geometry)
    and ``m`` masks invalid LR pixels. The per-pixel normalisation by ``A^T m`` makes
    cloud holes and SLC-off gaps harmless. ``kernels``: ``(K, K)`` or ``(T, K, K)``;
    an isotropic Gaussian is assumed when None. ``frames`` may be a batch ``(B, T, h, w)``
    of independent stacks (``shifts`` ``(B, T, 2)``), computed together. ``frame_means``: the gap
    filling's fallback (:func:`stack_ops.temporal_fill`), the whole stack's when ``frames`` is a tile of it.
    ``weights`` ``(T, h, w)``: each LR pixel's weight in the data term (robust fusion:
    :func:`agreement.agreement_weights`); None: every valid pixel counts fully.
    """
    check_shape("frames", frames, "..., T, h, w")
    check_shape("valid", valid, "..., T, h, w", like=frames)
    mon = ensure_monitor(monitor)
    for k, x, _ in _ibp_iterates(frames, valid, scale, shifts, kernels, iterations, step, mon, init, frame_means,
                                 weights):
        if k:
            mon.progress(k / iterations, f"IBP iteration {k}/{iterations}")
    return x


# candidate iteration counts of the automatic choice, and the share of LR pixels held out to choose
IBP_CANDIDATES = (5, 10, 15, 20, 30, 40, 60)
HOLDOUT_SHARE = 0.1


def choose_ibp_iterations(
    frames: torch.Tensor,
    valid: torch.Tensor,
    scale: int,
    shifts: torch.Tensor | None = None,
    kernels: torch.Tensor | None = None,
    frame_means: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    candidates: tuple[int, ...] = IBP_CANDIDATES,
    seed: int = 0,
    monitor: Monitor | None = None,
) -> tuple[int, list[float]]:
    """The IBP iteration count of ``candidates`` that predicts held-out LR pixels best, and the held-out
    mean squared error of each candidate; ``frames`` ``(T, h, w)`` as for :func:`ibp`.

    IBP converges on the data it fits, noise and disagreement included: frames cut from one image
    want 60 iterations or more, real dates that differ where the land changed 10 to 20 (BENCHMARKS.md).
    A random ``HOLDOUT_SHARE`` of the valid LR pixels away from the edges (whose scene lies partly
    beyond the raster) is left out of one IBP run, and the count after which the estimate predicts
    them best is the stack's."""
    check_shape("frames", frames, "T, h, w")
    check_shape("valid", valid, "T, h, w", like=frames)
    g = torch.Generator().manual_seed(seed)
    inner = torch.zeros_like(valid)
    inner[:, 3:-3, 3:-3] = True
    hold = valid & inner & (torch.rand(valid.shape, generator=g) < HOLDOUT_SHARE)
    if not hold.any():
        return max(candidates), []
    errors = []
    mon = ensure_monitor(monitor)
    last = max(candidates)
    for k, _, pred in _ibp_iterates(frames, valid & ~hold, scale, shifts, kernels, last, 1.0, mon, None, frame_means,
                                    weights, last_prediction=True):
        if k in candidates:
            errors.append(float(((frames - pred)[hold] ** 2).mean()))
        mon.progress(k / last, f"choosing IBP iterations: {k}/{last}")
    order = sorted(candidates)
    return order[min(range(len(order)), key=errors.__getitem__)], errors


def _ibp_iterates(frames, valid, scale, shifts, kernels, iterations, step, mon, init, frame_means, weights=None,
                  last_prediction=False):
    """IBP (:func:`ibp`) as it goes: yields ``(k, x, A x)`` after ``k`` = 0 .. ``iterations`` iterations,
    ``x`` cropped to the raster (after the last iteration only, else None) and its prediction of the frames
    ``A x`` to the LR raster (None after the last iteration unless ``last_prediction``)."""
    T = frames.shape[-3]
    if kernels is None:
        kernels = default_psf(scale)
    kernels = kernels.to(frames.dtype)
    if kernels.dim() == 2:
        kernels = kernels[None].expand(T, -1, -1)
    hr_shifts = None if shifts is None else shifts.to(frames.dtype) * scale
    # The estimate covers a margin around the raster: the LR pixels along the edges see scene
    # beyond it (the kernel's reach, the frames' shifts), and on the raster alone their residuals
    # were all pushed onto its outermost pixels (bright and dark lines along the borders, 3.4 dB
    # worse there than inside on the real-date benchmark). The margin's pixels are free unknowns,
    # seen only by the data; the raster is cropped out at the end.
    margin = margin_px(kernels.shape[-1], hr_shifts, scale)
    M = margin * scale
    m = valid.to(frames.dtype)
    m = F.pad(m if weights is None else m * weights.to(frames.dtype), (margin,) * 4)
    y = F.pad(temporal_fill(frames, valid, frame_means), (margin,) * 4)
    lr_size = tuple(y.shape[-2:])
    op = ShiftBlur(kernels, scale, hr_shifts, lr_size)

    x = mean_bicubic(frames, valid, scale, shifts, frame_means) if init is None else init.to(frames.dtype)
    lead, (H, W) = x.shape[:-2], x.shape[-2:]
    x = F.pad(x.reshape(-1, 1, H, W), (M,) * 4, mode="replicate").reshape(*lead, H + 2 * M, W + 2 * M)
    # where an HR pixel is seen only through the negative lobes of the cubic shift (a large
    # shift, a cloud over the reference), A^T m nearly cancels while the back-projected residual
    # does not, and the iteration diverged to NaN. The floor |A|^T m / 1.3 bounds the step's gain
    # (Gershgorin: rows of |A| sum to at most 1.25^2) and stays below A^T m where pixels are well
    # seen, replicated borders included (ratio ~0.8 there), so IBP converges as fast as before.
    hr_size = tuple(x.shape[-2:])
    gain = ShiftBlur(kernels, scale, hr_shifts, lr_size, "bicubic-magnitude") if hr_shifts is not None else op
    norm = torch.maximum(op.adjoint(m, hr_size), gain.adjoint(m, hr_size) / 1.3)
    # The iterations stay on the frames' common grid (zero weight off each frame) and keep the estimate as the
    # operator's phases (:meth:`ShiftBlur.phases`): no HR-size reshuffling per iteration. Pixels the phases pad
    # with are read by no weighted LR pixel, so their update is 0 and they stay 0.
    m, y = op.flat(op.to_grid(m)), op.flat(op.to_grid(y))
    # a fixed floor, not one relative to the window's clear share: a tile must divide by what the whole raster
    # does (the raster's corner pixels, seen by a sliver of one frame, differed by 5 DN in tiles)
    norm = op.phases(norm).clamp(min=1e-3)
    p = op.phases(x)
    h, w = frames.shape[-2:]
    for k in range(iterations + 1):
        mon.check()
        # the last estimate's prediction is needed only by callers that score it, not by the update
        pred = op.forward_phases(p) if k < iterations or last_prediction else None
        x = op.image(p, lead, hr_size)[..., M:M + H, M:M + W] if k == iterations else None
        yield k, x, None if pred is None else \
            op.from_grid(pred.reshape(*lead, T, *op.full_size))[..., margin:margin + h, margin:margin + w]
        if k == iterations:
            return
        p = p + step * op.adjoint_phases(m * (y - pred)) / norm


def classic_halo(method: str, shifts: torch.Tensor | None) -> int:
    """Input pixels of halo that make a tile of ``method`` match the untiled result: the bicubic
    upsampling and the frames' shifts, plus IBP's own reach (:data:`windows.IBP_HALO`)."""
    reach = 0 if shifts is None or shifts.numel() == 0 else math.ceil(float(shifts.abs().max()))
    return reach + 3 + (IBP_HALO if method == "ibp" else 0)


def classic_tiles(source, stats: StackStats, method: str, scale: int, shifts: torch.Tensor | None, sink,
                  kernels: torch.Tensor | None = None, iterations: int = 40, tile: int = 0,
                  monitor: Monitor | None = None, agreement: tuple[int, torch.Tensor] | None = None,
                  ref: int = 0) -> None:
    """Mean of bicubic (``method`` "bicubic"), the reference date ``ref`` alone ("bicubic-ref") or IBP of a source (:mod:`windows`) in ``tile``-px tiles
    (0: one), each handed to ``sink``: the same result as on the whole stack, in bounded memory.
    ``agreement``: (the reference's index, the robust spreads of :func:`agreement.agreement_weights`
    measured once on the stack): IBP weighs each LR pixel by the frame's agreement with the reference."""
    compute, halo = classic_compute(source, stats, method, scale, shifts, kernels, iterations, agreement, ref)
    run_tiles(source, scale, tile, halo, compute, sink, monitor)


def classic_compute(source, stats: StackStats, method: str, scale: int, shifts: torch.Tensor | None,
                    kernels: torch.Tensor | None = None, iterations: int = 40,
                    agreement: tuple[int, torch.Tensor] | None = None, ref: int = 0):
    """What :func:`classic_tiles` runs on each tile (a :data:`windows.Compute`: its HR output on the window read)
    and the halo it needs; any wider halo gives the same result.

    The weights need a wider halo than IBP; each tile computes them on the wider window and runs IBP
    on it less the extra ring (on the sides where a ring was read), so IBP costs what it did."""
    extra = agreement_halo(shifts) if method == "ibp" and agreement is not None else 0

    def compute(frames: torch.Tensor, valid: torch.Tensor, window, mon: Monitor) -> tuple[torch.Tensor]:
        if method == "bicubic":
            return (mean_bicubic(frames, valid, scale, shifts, stats.frame_means),)
        if method == "bicubic-ref":
            return (reference_bicubic(frames, valid, ref, scale, stats.frame_means),)
        if not extra:
            return (ibp(frames, valid, scale, shifts, kernels, iterations=iterations, monitor=mon,
                        frame_means=stats.frame_means),)
        agree_ref, spreads = agreement
        weights, _ = agreement_weights(frames, valid, agree_ref, shifts, float(stats.frame_means[agree_ref]), spreads)
        h, w = frames.shape[-2:]
        rows, cols = window
        top, left = (extra if rows.start > 0 else 0), (extra if cols.start > 0 else 0)
        bottom, right = h - (extra if rows.stop < source.height else 0), w - (extra if cols.stop < source.width else 0)
        inner = (slice(None), slice(top, bottom), slice(left, right))
        out = torch.zeros(h * scale, w * scale, dtype=frames.dtype)
        out[top * scale:bottom * scale, left * scale:right * scale] = ibp(
            frames[inner], valid[inner], scale, shifts, kernels, iterations=iterations, monitor=mon,
            frame_means=stats.frame_means, weights=weights[inner])
        return (out,)

    return compute, classic_halo(method, shifts) + extra
