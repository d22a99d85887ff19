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
   below a minimum (:data:`params.REGISTRATION_QUALITY`) and report them;
4. the same refinement again from there with a gain and bias per block of about
   :data:`PHOTOMETRIC_BLOCK` px: fields change one by one, and a field whose contrast changed pulls
   a frame-wide fit along its edges (real-date error 0.074 -> 0.064 LR px, BENCHMARKS.md). The
   quality stays step 3's: blocks would fit a frame of other land too.

Large rasters are registered on their most valid central window (shifts are global).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..degradation.operators import shift_images
from ..progress import Monitor, ensure_monitor
from ..io.windows import TensorStack, best_window, read_window, stack_stats

TUKEY_C = 4.685  # 95 % efficiency under Gaussian noise
MAX_WINDOW = 384  # LR px: larger rasters are registered on a central window of this size
PHOTOMETRIC_BLOCK = 11  # LR px: the side of the blocks with their own gain and bias (a field or two)
PHOTOMETRIC_RIDGE = 0.1  # prior weight of the blocks' mean gain and bias, x a block's own information


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


def robust_scale(res: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """1.4826 x the median absolute residual of each frame over ``m`` ``(T,)``."""
    out = torch.ones(res.shape[0], dtype=res.dtype)
    for t in range(res.shape[0]):
        r = res[t][m[t]]
        if r.numel():
            out[t] = 1.4826 * r.abs().median()
    return out.clamp(min=1e-12 * float(res.abs().max().clamp(min=1e-30)))


def _blocks(H: int, W: int, block: int) -> tuple[torch.Tensor, int]:
    """Block index ``(H, W)`` of every pixel in a grid of about ``block``-px blocks, and their count."""
    ny, nx = max(1, round(H / block)), max(1, round(W / block))
    by = torch.arange(H) * ny // H
    bx = torch.arange(W) * nx // W
    return by[:, None] * nx + bx[None, :], ny * nx


def _block_sums(x: torch.Tensor, bid: torch.Tensor, nb: int) -> torch.Tensor:
    """Sums ``(T, nb, ...)`` of the per-pixel ``x`` ``(T, H, W, ...)`` over each block."""
    T, H, W = x.shape[:3]
    flat = x.reshape(T, H * W, *x.shape[3:])
    return torch.zeros(T, nb, *x.shape[3:], dtype=x.dtype).index_add_(1, bid.reshape(-1), flat)


def refine_shifts(
    ref: torch.Tensor,
    frames: torch.Tensor,
    ref_valid: torch.Tensor,
    valid: torch.Tensor,
    init: torch.Tensor,
    iterations: int = 30,
    border: int = 3,
    bound: float | None = None,
    block: int = PHOTOMETRIC_BLOCK,
    monitor: Monitor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust (Tukey-reweighted) masked Gauss-Newton refinement of (dy, dx) with a gain and bias
    per block of about ``block`` px (``block`` >= the frame: one per frame); returns the shifts
    ``(T, 2)`` and the quality ``(T,)``. ``bound``: the shifts stay within ``init`` +- ``bound``
    (None: unbounded). ``monitor``: checked for cancellation every iteration.

    Why blocks: land changes field by field (a mowed meadow, a greening crop), so the brightness
    relation between two dates holds locally, not over the frame; a field whose contrast changed
    pulls a single-gain fit along its edges, below what the robust weights reject. Each block's
    gain and bias are eliminated in closed form (Schur complement), so the cost stays linear in
    the pixels; a ridge of :data:`PHOTOMETRIC_RIDGE` x the mean block's information keeps them
    near the blocks' mean, so a block with few valid pixels follows its neighbours."""
    T, H, W = frames.shape
    dt = ref.dtype
    ref_f = _fill_invalid(ref[None], ref_valid[None])[0]
    bid, nb = _blocks(H, W, block)
    d = init.clone()
    photo = torch.zeros(T, nb, 2, dtype=dt)  # gain, bias of each block
    photo[..., 0] = 1.0
    inner = _inner(H, W, border)
    weights = torch.ones(T, H, W, dtype=dt)
    eye2 = torch.eye(2, dtype=dt)
    mon = ensure_monitor(monitor)
    for it in range(iterations):
        mon.check()
        warped = shift_images(ref_f.expand(T, H, W), d)
        wvalid = shift_images(ref_valid.to(dt).expand(T, H, W), d, mode="bilinear") > 0.999
        mask = valid & wvalid & inner
        gy = torch.zeros_like(warped)
        gx = torch.zeros_like(warped)
        gy[:, 1:-1] = (warped[:, 2:] - warped[:, :-2]) / 2
        gx[:, :, 1:-1] = (warped[:, :, 2:] - warped[:, :, :-2]) / 2
        pix = photo[:, bid]  # (T, H, W, 2)
        gain = pix[..., 0]
        res = frames - (gain * warped + pix[..., 1])
        if it >= 2:  # plain least squares first, to settle gain and bias before judging residuals
            u = res / (TUKEY_C * robust_scale(res, mask))[:, None, None]
            weights = (1 - u ** 2).clamp(min=0) ** 2
        w = mask.to(dt) * weights
        # d/d(d) of ref[p - d] is -grad(ref); the blocks' (gain, bias) have the Jacobian (warped, 1)
        jy, jx = -gain * gy, -gain * gx
        wy, wx, ww = w * jy, w * jx, w * warped
        s_ss = torch.stack([(wy * jy).sum(dim=(1, 2)), (wy * jx).sum(dim=(1, 2)),
                            (wx * jy).sum(dim=(1, 2)), (wx * jx).sum(dim=(1, 2))], dim=-1).reshape(T, 2, 2)
        r_s = torch.stack([(wy * res).sum(dim=(1, 2)), (wx * res).sum(dim=(1, 2))], dim=-1)
        sums = _block_sums(torch.stack([wy * warped, wy, wx * warped, wx, ww * warped, ww, w, ww * res, w * res], dim=-1),
                           bid, nb)  # (T, nb, 9)
        s_sp = sums[..., 0:4].reshape(T, nb, 2, 2)
        s_pp = torch.stack([sums[..., 4], sums[..., 5], sums[..., 5], sums[..., 6]], dim=-1).reshape(T, nb, 2, 2)
        r_p = sums[..., 7:9]
        ridge = (PHOTOMETRIC_RIDGE if nb > 1 else 0.0) * torch.diag_embed(s_pp.diagonal(dim1=-2, dim2=-1).mean(dim=1))  # (T, 2, 2)
        scale = 1 + s_pp.abs().amax(dim=(1, 2, 3))
        M = torch.linalg.inv(s_pp + ridge[:, None] + 1e-9 * scale[:, None, None, None] * eye2)
        # the ridge pulls every block towards the blocks' mean of the last iterate
        r_p = r_p - torch.einsum("tij,tbj->tbi", ridge, photo - photo.mean(dim=1, keepdim=True))
        s_spM = s_sp @ M
        A = s_ss - (s_spM @ s_sp.transpose(-1, -2)).sum(dim=1) + 1e-9 * eye2 * (1 + s_ss.abs().amax(dim=(1, 2)))[:, None, None]
        b = r_s - torch.einsum("tbij,tbj->ti", s_spM, r_p)
        step = torch.linalg.solve(A, b)
        dp = torch.einsum("tbij,tbj->tbi", M, r_p - torch.einsum("tbji,tj->tbi", s_sp, step))
        step = step.clamp(-0.5, 0.5)
        d = d + step
        if bound is not None:
            d = torch.maximum(torch.minimum(d, init + bound), init - bound)
        photo = photo + dp
        if it >= 4 and step.abs().max() < 1e-5:
            break
    warped = shift_images(ref_f.expand(T, H, W), d)
    wvalid = shift_images(ref_valid.to(dt).expand(T, H, W), d, mode="bilinear") > 0.999
    mask = valid & wvalid & inner
    quality = _ncc(frames, warped, mask & (weights > 0.5)).clamp(min=0)
    return d, quality


def register_stack(frames: torch.Tensor, valid: torch.Tensor, ref_index: int, bound: int = 2,
                   border: int = 3, monitor: Monitor | None = None) -> Registration:
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
    # quality (which frames are kept) from one gain and bias per frame: blocks would also fit a
    # frame of other land; the shifts from the blockwise model, started there
    d, quality = refine_shifts(ref, f, ref_valid, v, coarse, border=border, bound=0.75, block=max(H, W), monitor=monitor)
    d, _ = refine_shifts(ref, f, ref_valid, v, d, iterations=10, border=border, bound=0.75, monitor=monitor)
    d = torch.maximum(torch.minimum(d, coarse + 0.75), coarse - 0.75)
    d[ref_index] = 0.0
    quality[ref_index] = 1.0
    return Registration(d.float(), quality.float())


def register_frames(frames: torch.Tensor, valid: torch.Tensor, ref_index: int) -> torch.Tensor:
    """Shifts ``(T, 2)`` (dy, dx, LR pixels) of every frame relative to ``frames[ref_index]``
    (:func:`register_stack` without the quality)."""
    return register_stack(frames, valid, ref_index).shifts


def register_source(source, stats, ref_index: int, window: tuple[slice, slice] | None = None,
                    monitor: Monitor | None = None) -> Registration:
    """:func:`register_stack` of a source (:mod:`windows`), on ``window``, by default its most valid
    central window of :data:`MAX_WINDOW` px (chosen on ``stats``' coverage map), read from it: the whole
    stack is never needed."""
    rows, cols = window or best_window(stats, source.height, source.width, MAX_WINDOW)
    return register_stack(*read_window(source, rows, cols), ref_index, monitor=monitor)


REFERENCE_TIE = 0.01  # images whose clear share is within this of the clearest one tie for the reference


def typical_reference(clear: Sequence[float], read: Callable[[], tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[int, list[float]]:
    """The reference image when none is given: the clearest, and among images equally clear (no masks, or
    masks that leave several images whole) the one the others agree with most. An outlier date (snow, a
    flood, another season) as the reference makes every other date look like other land and leaves it out.

    Agreement: the correlation of each tied image with the per-pixel median of all the images, each image
    standardised on its valid pixels of the window ``read()`` returns (``(T, h, w)`` frames and validity; read
    only when there is a tie). Returns the index and the tied images' correlations (empty when there was no tie)."""
    clear = [float(c) for c in clear]
    top = max(clear)
    tied = [t for t, c in enumerate(clear) if c >= top - REFERENCE_TIE]
    if len(tied) < 2:
        return tied[0], []
    frames, valid = read()
    f = frames.double()
    n = valid.sum(dim=(1, 2)).clamp(min=1)
    mean = (f * valid).sum(dim=(1, 2)) / n
    std = (((f - mean[:, None, None]) ** 2 * valid).sum(dim=(1, 2)) / n).sqrt().clamp(min=1e-12)
    z = torch.where(valid, (f - mean[:, None, None]) / std[:, None, None], torch.full_like(f, float("nan")))
    median = torch.nanmedian(z, dim=0).values
    corr = []
    for t in tied:
        m = valid[t] & torch.isfinite(median)
        corr.append(float((z[t][m] * (median[m] - median[m].mean())).mean() / median[m].std().clamp(min=1e-12))
                    if int(m.sum()) > 1 else float("-inf"))
    return tied[max(range(len(tied)), key=corr.__getitem__)], corr
