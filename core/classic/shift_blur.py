"""IBP's degradation operator ``A`` (shift, blur, decimate; :func:`degradation.degrade`'s geometry) as one strided
convolution per stack, and its exact adjoint as the transposed convolution.

A cubic sub-pixel shift is itself a 4-tap separable filter, so shifting and then blurring with a ``K x K`` kernel is
one ``(K + 3) x (K + 3)`` kernel per frame; the frames' offsets (within one LR pixel) place their kernels in one
common kernel, and all ``T`` frames come out of one strided convolution with ``T`` output channels, computed as a
dense convolution of the image's ``s^2`` phases; the adjoint is the dense convolution that gives the phases back and
sums the frames. Nothing of HR size is made ``T`` times: IBP without autograd, in a fraction of the memory and time
of shifting ``T`` HR copies (BENCHMARKS.md, "IBP at scale").

The result equals ``blur_downsample(shift_images(x, d), k, s)`` exactly for every LR pixel whose footprint lies
inside ``x`` (the two differ only in how the image is continued beyond its edges: zeros here, replicated and
reflected there). IBP estimates a margin wider than any footprint's reach, so it never sees the difference.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..degradation.operators import tap_weights


def _taps(d: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 interpolation weights ``(..., 4)`` and integer offsets ``(...)`` of :func:`degradation.shift_images` by
    ``d``: ``out[p] = sum_c w_c x[p + e + c - 1]``."""
    e = torch.floor(-d)
    return tap_weights(-d - e, mode), e.long()


class ShiftBlur:
    """``A`` for frames of ``(..., T, h, w)`` LR px seen by an HR image ``(..., H, W)``.

    ``kernels``: ``(T, K, K)``; ``hr_shifts``: ``(T, 2)`` shared by every stack of a batch, ``(B, T, 2)`` one set per
    stack, or None; in HR px, content moved by ``+d`` as in :func:`degradation.shift_images`. ``mode``: the shift's
    interpolation, as there ("bicubic-magnitude" gives the non-negative majorant IBP bounds its step with).
    """

    def __init__(self, kernels: torch.Tensor, scale: int, hr_shifts: torch.Tensor | None, lr_size: tuple[int, int],
                 mode: str = "bicubic"):
        T, K = kernels.shape[0], kernels.shape[-1]
        self.scale, self.T, self.lr_size = scale, T, lr_size
        r, o = K // 2, (scale - 1) // 2
        self.batched = hr_shifts is not None and hr_shifts.dim() == 3
        self.offsets = None  # per stack and frame, the LR rows and columns its outputs lie down the common grid
        if hr_shifts is None:
            weight, self.full_size, lo = kernels[:, None], lr_size, (0, 0)
        else:
            d = hr_shifts.to(kernels.dtype).reshape(-1, T, 2)  # (B, T, 2)
            (wy, ey), (wx, ex) = _taps(d[..., 0], mode), _taps(d[..., 1], mode)
            # a shift by whole LR pixels moves the outputs, not the kernel: only the remainder (< s HR px) widens it
            qy, qx = torch.div(ey, scale, rounding_mode="floor"), torch.div(ex, scale, rounding_mode="floor")
            ry, rx = ey - scale * qy, ex - scale * qx
            lo = (int(ry.min()), int(rx.min()))
            size = (K + 3 + int(ry.max()) - lo[0], K + 3 + int(rx.max()) - lo[1])
            weight = kernels.new_zeros(d.shape[0], T, *size)
            for b in range(d.shape[0]):
                for t in range(T):
                    y0, x0 = int(ry[b, t]) - lo[0], int(rx[b, t]) - lo[1]
                    for c in range(4):
                        for c2 in range(4):
                            weight[b, t, y0 + c:y0 + c + K, x0 + c2:x0 + c2 + K] += wy[b, t, c] * wx[b, t, c2] * kernels[t]
            weight = weight.reshape(-1, 1, *size)  # (B*T or T, 1, ky, kx)
            q0 = (int(qy.min()), int(qx.min()))
            self.offsets = [[(int(qy[b, t]) - q0[0], int(qx[b, t]) - q0[1]) for t in range(T)] for b in range(d.shape[0])]
            self.full_size = (lr_size[0] + int(qy.max()) - q0[0], lr_size[1] + int(qx.max()) - q0[1])
            lo = (lo[0] - 1 + scale * q0[0], lo[1] - 1 + scale * q0[1])  # the taps start one before the pixel
        # HR index of the kernel's first tap for the common grid's LR pixel 0
        self.base = (o - r + lo[0], o - r + lo[1])
        # Polyphase: the strided convolution of the HR image is a plain convolution of its s^2 phases (pixel_unshuffle)
        # with the kernel's phases, and the adjoint one of the frames giving the s^2 phases (pixel_shuffle), so both
        # are dense convolutions at LR size (several times faster than conv_transpose2d's scatter on CPU).
        ky, kx = weight.shape[-2:]
        self.taps = (-(-ky // scale), -(-kx // scale))  # LR taps of a phase
        B = weight.shape[0] // T
        w = F.pad(weight[:, 0], (0, self.taps[1] * scale - kx, 0, self.taps[0] * scale - ky))
        w = w.reshape(B, T, self.taps[0], scale, self.taps[1], scale).permute(0, 1, 3, 5, 2, 4)
        w = w.reshape(B, T, scale * scale, *self.taps)  # [b, t, phase a*s+b2, m, n] = kernel[s*m + a, s*n + b2]
        self.phases_in = w.reshape(B * T, scale * scale, *self.taps)
        self.phases_out = w.flip(-2, -1).transpose(1, 2).reshape(B * scale * scale, T, *self.taps)

    def _pads(self, H: int, W: int) -> tuple[int, int, int, int]:
        """F.pad amounts (left, right, top, bottom; negative crops) that put the first tap of the common grid's
        LR pixel ``i`` at ``s * i`` and make the padded image exactly as long as its outputs need."""
        s, (h, w), (my, mx) = self.scale, self.full_size, self.taps
        by, bx = self.base
        return -bx, s * (w - 1 + mx) + bx - W, -by, s * (h - 1 + my) + by - H

    def flat(self, v: torch.Tensor) -> torch.Tensor:
        """``(..., T, h, w)`` -> the convolutions' ``(N, B*T or T, h, w)``."""
        return v.reshape(1, -1, *v.shape[-2:]) if self.batched else v.reshape(-1, self.T, *v.shape[-2:])

    def from_grid(self, g: torch.Tensor) -> torch.Tensor:
        """``(..., T, hf, wf)`` on the common grid (the union of the frames' LR grids) -> each frame's ``(..., T, h, w)``."""
        if self.offsets is None:
            return g
        (h, w), flat = self.lr_size, self.flat(g)
        out = torch.stack([flat[:, i, dy:dy + h, dx:dx + w]
                           for i, (dy, dx) in enumerate(o for per in self.offsets for o in per)], dim=1)
        return out.reshape(*g.shape[:-2], h, w)

    def to_grid(self, v: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`from_grid`: each frame's ``(..., T, h, w)`` placed on the common grid, zeros around."""
        if self.offsets is None:
            return v
        (h, w), flat = self.lr_size, self.flat(v)
        full = v.new_zeros(*flat.shape[:2], *self.full_size)
        for i, (dy, dx) in enumerate(o for per in self.offsets for o in per):
            full[:, i, dy:dy + h, dx:dx + w] = flat[:, i]
        return full.reshape(*v.shape[:-2], *self.full_size)

    def phases(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., H, W)`` -> its ``s^2`` phases, padded (or cropped) to what the outputs read: the layout
        :meth:`forward_phases` and :meth:`adjoint_phases` work in (an iterative solver may keep its estimate in it)."""
        H, W = x.shape[-2:]
        B = self.phases_in.shape[0] // self.T
        x = x.reshape(1, B, H, W) if self.batched else x.reshape(-1, 1, H, W)
        return F.pixel_unshuffle(F.pad(x, self._pads(H, W)), self.scale)

    def image(self, p: torch.Tensor, lead: tuple[int, ...], hr_size: tuple[int, int]) -> torch.Tensor:
        """The transpose of :meth:`phases` (its inverse on the pixels the outputs read): ``(*lead, H, W)``."""
        left, right, top, bottom = self._pads(*hr_size)
        return F.pad(F.pixel_shuffle(p, self.scale), (-left, -right, -top, -bottom)).reshape(*lead, *hr_size)

    def forward_phases(self, p: torch.Tensor) -> torch.Tensor:
        """Phases (:meth:`phases`) -> the frames on the common grid ``(N, B*T or T, hf, wf)``."""
        return F.conv2d(p, self.phases_in, groups=self.phases_in.shape[0] // self.T)

    def adjoint_phases(self, v: torch.Tensor) -> torch.Tensor:
        """The transpose of :meth:`forward_phases`."""
        my, mx = self.taps
        return F.conv2d(F.pad(self.flat(v), (mx - 1, mx - 1, my - 1, my - 1)), self.phases_out,
                        groups=self.phases_in.shape[0] // self.T)

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., H, W)`` -> the frames on the common grid ``(..., T, hf, wf)``."""
        return self.forward_phases(self.phases(x)).reshape(*x.shape[:-2], self.T, *self.full_size)

    def adjoint_grid(self, v: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
        """``v`` ``(..., T, hf, wf)`` on the common grid -> ``(..., H, W)``: the transpose of :meth:`forward_grid`."""
        return self.image(self.adjoint_phases(v), v.shape[:-3], hr_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., H, W)`` -> ``(..., T, h, w)``."""
        return self.from_grid(self.forward_grid(x))

    def adjoint(self, v: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
        """``v`` ``(..., T, h, w)`` -> ``(..., H, W)``: the exact transpose of :meth:`forward`."""
        return self.adjoint_grid(self.to_grid(v), hr_size)


def footprint_reach(kernel_size: int, hr_shifts: torch.Tensor | None) -> float:
    """HR px from an LR pixel's centre to the farthest HR pixel ``A`` reads for it."""
    return kernel_size // 2 + (0.0 if hr_shifts is None else float(hr_shifts.abs().max())) + 2


def margin_px(kernel_size: int, hr_shifts: torch.Tensor | None, scale: int) -> int:
    """LR px of margin beyond which no in-raster LR pixel's footprint reaches."""
    return math.ceil(footprint_reach(kernel_size, hr_shifts) / scale)
