"""The degradation model: anisotropic Gaussian kernels, blur + downsampling, shifts, noise.

Sub-pixel alignment convention (used by every module: DIP-FKP, CR training, TTF,
the bilinear/bicubic residual and the baselines)
-----------------------------------------------------------------------------------
Pixel indices are pixel *centres*: HR pixel ``p`` covers ``[p - 0.5, p + 0.5)``.
LR pixel ``i`` at integer scale ``s`` covers exactly the HR block ``s*i .. s*i + s - 1``
(the GeoTIFF pixel-corner convention: same origin, pixel size divided by ``s``),
so its centre sits at HR coordinate ``s*i + (s - 1) / 2``.

The LR value is the kernel-weighted average of the HR image around that centre::

    y[i, j] = sum_{u, v} k[u, v] * x[s*i + o + u - r, s*j + o + v - r]

with ``o = (s - 1) // 2`` and ``r = K // 2`` for a ``K x K`` kernel (``K`` odd,
``4*s + 3`` by default). A kernel is therefore *centred* when its centroid is at
array index ``r + d`` with ``d = ((s - 1) % 2) / 2``: exactly the middle pixel for
odd scales, half a pixel down-right of it for even scales. A linear ramp is mapped
to the LR pixel centres exactly (tested). Cubic upsampling (:func:`upsample_bicubic`) uses the same geometry.

Shifts: ``shift_images(x, d)`` returns ``x'[p] = x[p - d]`` (content moves by ``+d``).
A frame shifted by ``d`` LR pixels is ``blur_downsample(shift_images(x, s * d))``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..convention import kernel_center_offset
from ..shapes import check_shape

# Gaussian standard deviations of plausible sensor PSFs, as a fraction of the scale
# (in HR pixels): MTF at the LR Nyquist frequency between ~0.55 and ~0.06.
SIGMA_FRACTION_RANGE = (0.35, 0.75)


def sigma_range(scale: int) -> tuple[float, float]:
    """Range of Gaussian sigmas (HR pixels) considered plausible at this scale."""
    lo, hi = SIGMA_FRACTION_RANGE
    return lo * scale, hi * scale


def gaussian_kernels(
    sigma1: torch.Tensor | float,
    sigma2: torch.Tensor | float,
    theta: torch.Tensor | float,
    size: int,
    scale: int,
) -> torch.Tensor:
    """Normalized anisotropic Gaussian kernels, centred per the alignment convention.

    ``sigma1`` is the standard deviation (HR pixels) along the principal axis at
    angle ``theta`` (radians, counter-clockwise from the +column axis towards -row,
    i.e. as seen on a north-up map), ``sigma2`` across it. Tensor arguments of shape
    ``(N,)`` give ``(N, size, size)``; scalars give ``(size, size)``. Differentiable.
    """
    scalar = not any(torch.is_tensor(a) and a.dim() > 0 for a in (sigma1, sigma2, theta))
    ref = next((a for a in (sigma1, sigma2, theta) if torch.is_tensor(a)), None)
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    device = ref.device if ref is not None else None
    s1, s2, th = (torch.as_tensor(a, dtype=dtype, device=device).reshape(-1) for a in (sigma1, sigma2, theta))
    s1, s2, th = torch.broadcast_tensors(s1, s2, th)
    centre = (size - 1) / 2.0 + kernel_center_offset(scale)
    ax = torch.arange(size, dtype=dtype, device=device) - centre
    rows, cols = torch.meshgrid(ax, ax, indexing="ij")
    x = cols[None]
    y = -rows[None]  # map "up" is -row
    c, s = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
    along = c * x + s * y
    across = -s * x + c * y
    logk = -0.5 * ((along / s1[:, None, None]) ** 2 + (across / s2[:, None, None]) ** 2)
    k = torch.softmax(logk.reshape(logk.shape[0], -1), dim=-1).reshape(-1, size, size)
    return k[0] if scalar else k


def random_gaussian_params(
    n: int, scale: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``n`` (sigma1, sigma2, theta) uniformly in the plausible range."""
    lo, hi = sigma_range(scale)
    u = torch.rand(3, n, generator=generator, dtype=torch.float64)
    s1 = lo + (hi - lo) * u[0]
    s2 = lo + (hi - lo) * u[1]
    theta = math.pi * u[2]
    return s1.float(), s2.float(), theta.float()


def _pad(x: torch.Tensor, r: int, mode: str) -> torch.Tensor:
    if mode == "reflect" and min(x.shape[-2:]) <= r:
        mode = "replicate"
    return F.pad(x, (r, r, r, r), mode=mode)


def blur_downsample(
    x: torch.Tensor, kernel: torch.Tensor, scale: int, pad_mode: str = "reflect"
) -> torch.Tensor:
    """Blur with ``kernel`` and keep one sample per ``scale x scale`` block.

    ``x``: ``(..., H, W)``. ``kernel``: ``(K, K)`` shared by all images, or
    ``(N, K, K)`` with one kernel per leading item when ``x`` is ``(N, H, W)`` or
    ``(N, C, H, W)``. Returns ``(..., H // scale, W // scale)``; borders are padded
    with ``pad_mode`` so the output grid is exactly the LR grid of the convention.
    """
    check_shape("x", x, "..., H, W")
    check_shape("kernel", kernel, "..., K, K")
    K = kernel.shape[-1]
    if kernel.shape[-2] != K or K % 2 == 0:
        raise ValueError("kernels must be square with an odd size")
    r, o = K // 2, (scale - 1) // 2
    lead = x.shape[:-2]
    H, W = x.shape[-2:]
    h, w = H // scale, W // scale
    kernel = kernel.to(dtype=x.dtype, device=x.device)
    if kernel.dim() == 2:
        flat = x.reshape(-1, 1, H, W)
        weight = kernel[None, None]
        groups = 1
    else:
        n = kernel.shape[0]
        if len(lead) == 0 or lead[0] != n:
            raise ValueError(f"{n} kernels given for images with leading shape {tuple(lead)}")
        per = int(math.prod(lead[1:])) if len(lead) > 1 else 1
        flat = x.reshape(1, n * per, H, W)
        weight = kernel.repeat_interleave(per, dim=0)[:, None]
        groups = n * per
    padded = _pad(flat, r, pad_mode)[..., o:, o:]
    y = F.conv2d(padded, weight, stride=scale, groups=groups)[..., :h, :w]
    return y.reshape(*lead, h, w)


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """Keys cubic-convolution weights (a = -0.5) of taps -1, 0, 1, 2 at fraction ``t``.

    a = -0.5 reproduces linear (and quadratic) signals exactly; PyTorch's bicubic
    modes use a = -0.75, which biases sub-pixel shifts by several percent.
    """
    t = t[..., None]
    x = torch.cat([t + 1, t, 1 - t, 2 - t], dim=-1).abs()
    near = 1.5 * x ** 3 - 2.5 * x ** 2 + 1
    far = -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _linear_weights(t: torch.Tensor) -> torch.Tensor:
    t = t[..., None]
    zero = torch.zeros_like(t)
    return torch.cat([zero, 1 - t, t, zero], dim=-1)


def tap_weights(t: torch.Tensor, mode: str) -> torch.Tensor:
    """The 4 weights ``(..., 4)`` of taps -1, 0, 1, 2 at fraction ``t`` for an interpolation ``mode``: "bicubic",
    "bicubic-magnitude" (the absolute weights: they bound the operator's gain, IBP's step size) or "bilinear"."""
    if mode == "bicubic":
        return _cubic_weights(t)
    if mode == "bicubic-magnitude":
        return _cubic_weights(t).abs()
    return _linear_weights(t)


def _resample_axis(x: torch.Tensor, src: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Sample ``x`` along ``dim`` at fractional positions ``src`` (edges replicated).

    ``x``: ``(N, ..., H, W)``; ``src``: ``(P,)`` shared or ``(N, P)`` per leading item.
    """
    length = x.shape[dim]
    base = torch.floor(src)
    w = tap_weights(src - base, mode)
    idx = base.long()
    out = 0
    for k in range(4):
        ik = (idx + (k - 1)).clamp(0, length - 1)
        wk = w[..., k]
        # move the sampled axis last, index it, move it back
        xt = x.movedim(dim, -1)
        if ik.dim() == 1:
            taken = xt[..., ik]
            wk_b = wk
        else:
            shape = (ik.shape[0],) + (1,) * (xt.dim() - 2) + (ik.shape[1],)
            taken = torch.gather(xt, -1, ik.reshape(shape).expand(*xt.shape[:-1], ik.shape[1]))
            wk_b = wk.reshape(shape)
        out = out + (taken * wk_b).movedim(-1, dim)
    return out


def upsample_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Cubic upsampling on the convention's grid (LR centre i -> HR s*i + (s-1)/2)."""
    h, w = x.shape[-2:]
    lead = x.shape[:-2]
    x3 = x.reshape(-1, h, w)
    src_y = (torch.arange(h * scale, dtype=x.dtype, device=x.device) + 0.5) / scale - 0.5
    src_x = (torch.arange(w * scale, dtype=x.dtype, device=x.device) + 0.5) / scale - 0.5
    y = _resample_axis(_resample_axis(x3, src_y, 1, "bicubic"), src_x, 2, "bicubic")
    return y.reshape(*lead, h * scale, w * scale)


FEW_IMAGES, LARGE_IMAGE = 32, 4096  # below / above these, whole-plane slices beat a gather of every pixel


def _shift_axis(x: torch.Tensor, d: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """:func:`shift_images` along one axis for a few large images: each image's 4 taps are slices of the image
    (edges replicated by padding), with weights from the shift's fraction ``frac(-d)`` (the gather path takes it
    from each pixel's float position, equal to float rounding)."""
    length = x.shape[dim]
    e = torch.floor(-d.detach())
    w = tap_weights(-d - e, mode)
    e = e.long().tolist()
    P = max(abs(v) for v in e) + 2
    last = dim == x.dim() - 1
    x4 = x if x.dim() == 4 else x.unsqueeze(1)
    xp = F.pad(x4, (P, P, 0, 0) if last else (0, 0, P, P), mode="replicate")
    xp = xp if x.dim() == 4 else xp.squeeze(1)
    out = []
    for i, ei in enumerate(e):
        acc = 0
        for k in range(4):
            acc = acc + xp[i].narrow(dim - 1, P + ei + k - 1, length) * w[i, k]
        out.append(acc)
    return torch.stack(out)


def shift_images(x: torch.Tensor, shifts: torch.Tensor | Sequence[float], mode: str = "bicubic") -> torch.Tensor:
    """Translate images by sub-pixel amounts: ``out[p] = x[p - d]``.

    ``x``: ``(N, H, W)`` or ``(N, C, H, W)``; ``shifts``: ``(N, 2)`` as (dy, dx) in
    pixels, or a single pair applied to all. ``mode``: "bicubic" (Keys, a = -0.5),
    "bilinear", or "bicubic-magnitude" (the absolute Keys weights: not an interpolator,
    the non-negative majorant IBP normalises its step with). Borders replicate the edge pixels. Linear in ``x`` (autograd
    gives the exact adjoint, which IBP relies on) and differentiable in ``shifts``.
    """
    n, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    d = torch.as_tensor(shifts, dtype=x.dtype, device=x.device).reshape(-1, 2).expand(n, 2)
    if n <= FEW_IMAGES and H * W >= LARGE_IMAGE:
        return _shift_axis(_shift_axis(x, d[:, 0], x.dim() - 2, mode), d[:, 1], x.dim() - 1, mode)
    src_y = torch.arange(H, dtype=x.dtype, device=x.device)[None] - d[:, :1]
    src_x = torch.arange(W, dtype=x.dtype, device=x.device)[None] - d[:, 1:]
    return _resample_axis(_resample_axis(x, src_y, x.dim() - 2, mode), src_x, x.dim() - 1, mode)


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive white Gaussian noise with standard deviation ``sigma`` (same units as x)."""
    if sigma <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return x + sigma * noise


def degrade(
    hr: torch.Tensor,
    kernels: torch.Tensor,
    scale: int,
    shifts: torch.Tensor | None = None,
    noise_sigma: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Make ``N`` LR frames from one HR image ``(H, W)``: shift (LR px), blur, decimate, noise."""
    n = kernels.shape[0] if kernels.dim() == 3 else 1
    frames = hr.expand(n, *hr.shape[-2:])
    if shifts is not None:
        frames = shift_images(frames, torch.as_tensor(shifts, dtype=hr.dtype) * scale)
    lr = blur_downsample(frames, kernels if kernels.dim() == 3 else kernels[None].expand(n, -1, -1), scale)
    return add_noise(lr, noise_sigma, generator)
