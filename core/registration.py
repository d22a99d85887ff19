"""Sub-pixel registration of LR frames to a reference frame.

Shifts follow the convention of :mod:`degradation`: frame ``t`` is modelled as the
reference translated by ``d_t`` (``frame[p] ~ gain * ref[p - d_t] + bias``).
Coarse integer shifts come from masked phase correlation; a masked Gauss-Newton
refinement (Lucas-Kanade with gain and bias, since acquisitions differ in
illumination) gives the sub-pixel part.
"""
from __future__ import annotations

import torch

from .degradation import shift_images


def _fill_invalid(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    counts = valid.sum(dim=(-2, -1)).clamp(min=1)
    means = (frames * valid).sum(dim=(-2, -1)) / counts
    return torch.where(valid, frames, means[:, None, None])


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


def refine_shifts(
    ref: torch.Tensor,
    frames: torch.Tensor,
    ref_valid: torch.Tensor,
    valid: torch.Tensor,
    init: torch.Tensor,
    iterations: int = 15,
    border: int = 3,
) -> torch.Tensor:
    """Masked Gauss-Newton refinement of (dy, dx) with a per-frame gain and bias."""
    T, H, W = frames.shape
    ref_f = _fill_invalid(ref[None], ref_valid[None])[0]
    d = init.clone()
    gain = torch.ones(T, dtype=ref.dtype)
    bias = torch.zeros(T, dtype=ref.dtype)
    inner = torch.zeros(H, W, dtype=torch.bool)
    inner[border:H - border, border:W - border] = True
    for _ in range(iterations):
        warped = shift_images(ref_f.expand(T, H, W), d)
        wvalid = shift_images(ref_valid.to(ref.dtype).expand(T, H, W), d, mode="bilinear") > 0.999
        m = (valid & wvalid & inner).to(ref.dtype)
        gy = torch.zeros_like(warped)
        gx = torch.zeros_like(warped)
        gy[:, 1:-1] = (warped[:, 2:] - warped[:, :-2]) / 2
        gx[:, :, 1:-1] = (warped[:, :, 2:] - warped[:, :, :-2]) / 2
        # d/d(d) of ref[p - d] is -grad(ref)
        J = torch.stack([-gain[:, None, None] * gy, -gain[:, None, None] * gx, warped, torch.ones_like(warped)], dim=-1)
        res = frames - (gain[:, None, None] * warped + bias[:, None, None])
        Jm = J * m[..., None]
        A = torch.einsum("thwi,thwj->tij", Jm, J) + 1e-6 * torch.eye(4, dtype=ref.dtype)
        b = torch.einsum("thwi,thw->ti", Jm, res)
        step = torch.linalg.solve(A, b)
        step[:, :2] = step[:, :2].clamp(-1.0, 1.0)
        d = d + step[:, :2]
        gain = gain + step[:, 2]
        bias = bias + step[:, 3]
        if step[:, :2].abs().max() < 1e-4:
            break
    return d


def register_frames(frames: torch.Tensor, valid: torch.Tensor, ref_index: int) -> torch.Tensor:
    """Shifts ``(T, 2)`` (dy, dx, LR pixels) of every frame relative to ``frames[ref_index]``."""
    f = frames.double()
    ref, ref_valid = f[ref_index], valid[ref_index]
    coarse = phase_correlation(ref, f, ref_valid, valid)
    # phase correlation on tiny or featureless frames can lock onto the window; the
    # refinement only converges within ~1 px, so keep coarse jumps bounded
    H, W = ref.shape
    coarse = torch.where(coarse.abs() > min(H, W) // 4, torch.zeros_like(coarse), coarse)
    d = refine_shifts(ref, f, ref_valid, valid, coarse)
    d[ref_index] = 0.0
    return d.float()
