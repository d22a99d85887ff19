"""Sub-pixel registration of LR frames to a reference frame, robust to land that changed.

Shifts follow the convention of :mod:`degradation`: frame ``t`` is modelled as the
reference translated by ``d_t`` (``frame[p] ~ gain * ref[p - d_t] + bias``).

Real dates disagree (mowing, phenology, snow, undetected cloud), and a least-squares fit
follows the change instead of the ground: on the real-date benchmark the plain masked
Gauss-Newton was off by 1.07 LR px on average (BENCHMARKS.md). So:

1. a bounded coarse search: every integer shift within ``bound`` LR px (users' products are
   co-registered to about a pixel), plus the phase-correlation peak, scored by the masked
   normalised cross-correlation (NCC) of the overlap;
2. iteratively reweighted Gauss-Newton (Lucas-Kanade with gain and bias): pixels whose residual
   is far beyond the frame's robust spread (Tukey biweight on the MAD) stop pulling the shift;
3. a quality figure per frame: the NCC of the frame and the moved reference over the pixels
   that agree (Tukey weight above one half). A frame of other land, or one that cannot be
   aligned, scores low; callers leave out frames
   below a minimum (:data:`params.REGISTRATION_QUALITY`) and report them.

Large rasters are registered on their most valid central window (shifts are global).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .degradation import shift_images
from .windows import TensorStack, best_window, read_window, stack_stats

TUKEY_C = 4.685  # 95 % efficiency under Gaussian noise
MAX_WINDOW = 384  # LR px: larger rasters are registered on a central window of this size


@dataclass
class Registration:
    """Shifts ``(T, 2)`` (dy, dx, LR px) of every frame relative to the reference, and per frame
    ``quality`` ``(T,)`` in [0, 1] (1 for the reference; see the module docstring)."""

    shifts: torch.Tensor
    quality: torch.Tensor

    def kept(self, min_quality: float) -> torch.Tensor:
        """``(T,)`` bool: frames registered well enough to use (the reference always)."""
        return self.quality >= min_quality


def _fill_invalid(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    counts = valid.sum(dim=(-2, -1)).clamp(min=1)
    means = (frames * valid).sum(dim=(-2, -1)) / counts
    return torch.where(valid, frames, means[:, None, None])


def _ncc(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Masked normalised cross-correlation of ``(T, H, W)`` images over ``m``, ``(T,)``; 0 where
    either side is flat or fewer than 16 pixels overlap."""
    m = m.to(a.dtype)
    n = m.sum(dim=(-2, -1))
    am = (a * m).sum(dim=(-2, -1)) / n.clamp(min=1)
    bm = (b * m).sum(dim=(-2, -1)) / n.clamp(min=1)
    a0, b0 = (a - am[:, None, None]) * m, (b - bm[:, None, None]) * m
    den = ((a0 ** 2).sum(dim=(-2, -1)) * (b0 ** 2).sum(dim=(-2, -1))).sqrt()
    ncc = (a0 * b0).sum(dim=(-2, -1)) / den.clamp(min=1e-30)
    return torch.where((n >= 16) & (den > 1e-30), ncc, torch.zeros_like(ncc))


def phase_correlation(ref: torch.Tensor, frames: torch.Tensor, ref_valid: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Integer shifts ``(T, 2)`` maximising the phase correlation with ``ref``."""
    H, W = ref.shape
    win = torch.outer(torch.hann_window(H, periodic=False, dtype=ref.dtype), torch.hann_window(W, periodic=False, dtype=ref.dtype))
    r = _fill_invalid(ref[None], ref_valid[None])[0]
    f = _fill_invalid(frames, valid)
    r = (r - r.mean()) * win
    f = (f - f.mean(dim=(-2, -1), keepdim=True)) * win
    cross = torch.fft.fft2(f) * torch.conj(torch.fft.fft2(r))[None]
    corr = torch.fft.ifft2(cross / cross.abs().clamp(min=1e-12)).real
    idx = corr.reshape(corr.shape[0], -1).argmax(dim=1)
    dy, dx = idx // W, idx % W
    dy = torch.where(dy > H // 2, dy - H, dy)
    dx = torch.where(dx > W // 2, dx - W, dx)
    return torch.stack([dy, dx], dim=1).to(ref.dtype)


def _inner(H: int, W: int, border: int) -> torch.Tensor:
    """``(H, W)`` bool: all but a ``border``-px frame (where shifts and gradients see the padding)."""
    inner = torch.zeros(H, W, dtype=torch.bool)
    inner[border:H - border, border:W - border] = True
    return inner


def _integer_ncc(ref: torch.Tensor, frames: torch.Tensor, ref_valid: torch.Tensor, valid: torch.Tensor,
                 shift: tuple[int, int], border: int) -> torch.Tensor:
    """NCC ``(T,)`` of every frame with the reference moved by an integer ``shift`` (overlap only)."""
    T, H, W = frames.shape
    dy, dx = shift
    moved = torch.zeros(H, W, dtype=ref.dtype)
    mvalid = torch.zeros(H, W, dtype=torch.bool)
    ys, yd = slice(max(-dy, 0), H - max(dy, 0)), slice(max(dy, 0), H - max(-dy, 0))
    xs, xd = slice(max(-dx, 0), W - max(dx, 0)), slice(max(dx, 0), W - max(-dx, 0))
    moved[yd, xd], mvalid[yd, xd] = ref[ys, xs], ref_valid[ys, xs]
    return _ncc(frames, moved.expand(T, H, W), valid & mvalid & _inner(H, W, border))


def _robust_scale(res: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """1.4826 x the median absolute residual of each frame over ``m`` ``(T,)``."""
    out = torch.ones(res.shape[0], dtype=res.dtype)
    for t in range(res.shape[0]):
        r = res[t][m[t]]
        if r.numel():
            out[t] = 1.4826 * r.abs().median()
    return out.clamp(min=1e-12 * float(res.abs().max().clamp(min=1e-30)))


def refine_shifts(
    ref: torch.Tensor,
    frames: torch.Tensor,
    ref_valid: torch.Tensor,
    valid: torch.Tensor,
    init: torch.Tensor,
    iterations: int = 30,
    border: int = 3,
    bound: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust (Tukey-reweighted) masked Gauss-Newton refinement of (dy, dx) with a per-frame gain
    and bias; returns the shifts ``(T, 2)`` and the quality ``(T,)``. ``bound``: the shifts stay
    within ``init`` +- ``bound`` (None: unbounded)."""
    T, H, W = frames.shape
    ref_f = _fill_invalid(ref[None], ref_valid[None])[0]
    d = init.clone()
    gain = torch.ones(T, dtype=ref.dtype)
    bias = torch.zeros(T, dtype=ref.dtype)
    inner = _inner(H, W, border)
    weights = torch.ones(T, H, W, dtype=ref.dtype)
    for it in range(iterations):
        warped = shift_images(ref_f.expand(T, H, W), d)
        wvalid = shift_images(ref_valid.to(ref.dtype).expand(T, H, W), d, mode="bilinear") > 0.999
        mask = valid & wvalid & inner
        m = mask.to(ref.dtype)
        gy = torch.zeros_like(warped)
        gx = torch.zeros_like(warped)
        gy[:, 1:-1] = (warped[:, 2:] - warped[:, :-2]) / 2
        gx[:, :, 1:-1] = (warped[:, :, 2:] - warped[:, :, :-2]) / 2
        res = frames - (gain[:, None, None] * warped + bias[:, None, None])
        if it >= 2:  # plain least squares first, to settle gain and bias before judging residuals
            u = res / (TUKEY_C * _robust_scale(res, mask))[:, None, None]
            weights = (1 - u ** 2).clamp(min=0) ** 2
        # d/d(d) of ref[p - d] is -grad(ref)
        J = torch.stack([-gain[:, None, None] * gy, -gain[:, None, None] * gx, warped, torch.ones_like(warped)], dim=-1)
        Jm = J * (m * weights)[..., None]
        A = torch.einsum("thwi,thwj->tij", Jm, J) + 1e-9 * torch.eye(4, dtype=ref.dtype) * (1 + Jm.abs().amax())
        b = torch.einsum("thwi,thw->ti", Jm, res)
        step = torch.linalg.solve(A, b)
        step[:, :2] = step[:, :2].clamp(-0.5, 0.5)
        d = d + step[:, :2]
        if bound is not None:
            d = torch.maximum(torch.minimum(d, init + bound), init - bound)
        gain = gain + step[:, 2]
        bias = bias + step[:, 3]
        if it >= 4 and step[:, :2].abs().max() < 1e-5:
            break
    warped = shift_images(ref_f.expand(T, H, W), d)
    wvalid = shift_images(ref_valid.to(ref.dtype).expand(T, H, W), d, mode="bilinear") > 0.999
    mask = valid & wvalid & inner
    quality = _ncc(frames, warped, mask & (weights > 0.5)).clamp(min=0)
    return d, quality


def register_stack(frames: torch.Tensor, valid: torch.Tensor, ref_index: int, bound: int = 2,
                   border: int = 3) -> Registration:
    """Register every frame ``(T, H, W)`` (validity ``valid``) to ``frames[ref_index]``.

    Integer shifts within ``bound`` LR px, and the phase-correlation peak, are the candidates of
    the coarse search; the robust refinement then stays within 0.75 px of the chosen one."""
    H0, W0 = frames.shape[-2:]
    rows, cols = best_window(stack_stats(TensorStack(frames, valid)), H0, W0, MAX_WINDOW) \
        if max(H0, W0) > MAX_WINDOW else (slice(None), slice(None))
    f = frames[:, rows, cols].double()
    v = valid[:, rows, cols]
    ref, ref_valid = f[ref_index], v[ref_index]
    T, H, W = f.shape
    candidates = [(dy, dx) for dy in range(-bound, bound + 1) for dx in range(-bound, bound + 1)]
    peak = phase_correlation(ref, f, ref_valid, v)
    candidates += sorted({(int(a), int(b)) for a, b in peak.tolist() if max(abs(a), abs(b)) <= min(H, W) // 4} - set(candidates))
    best = torch.full((T,), -2.0, dtype=f.dtype)
    coarse = torch.zeros(T, 2, dtype=f.dtype)
    for cand in candidates:
        score = _integer_ncc(ref, f, ref_valid, v, cand, border)
        better = score > best + 1e-9
        best = torch.where(better, score, best)
        coarse[better] = torch.tensor(cand, dtype=f.dtype)
    d, quality = refine_shifts(ref, f, ref_valid, v, coarse, border=border, bound=0.75)
    d[ref_index] = 0.0
    quality[ref_index] = 1.0
    return Registration(d.float(), quality.float())


def register_frames(frames: torch.Tensor, valid: torch.Tensor, ref_index: int) -> torch.Tensor:
    """Shifts ``(T, 2)`` (dy, dx, LR pixels) of every frame relative to ``frames[ref_index]``
    (:func:`register_stack` without the quality)."""
    return register_stack(frames, valid, ref_index).shifts


def register_source(source, stats, ref_index: int, window: tuple[slice, slice] | None = None) -> Registration:
    """:func:`register_stack` of a source (:mod:`windows`), on ``window``, by default its most valid
    central window of :data:`MAX_WINDOW` px (chosen on ``stats``' coverage map), read from it: the whole
    stack is never needed."""
    rows, cols = window or best_window(stats, source.height, source.width, MAX_WINDOW)
    return register_stack(*read_window(source, rows, cols), ref_index)
