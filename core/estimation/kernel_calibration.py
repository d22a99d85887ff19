"""Calibration of a blind kernel estimate: the part of the blur the data cannot tell, set by the prior.

Blind estimation cannot separate the scene's sharpness from the kernels' width: a sharper image
seen through wider kernels explains the LR frames as well, so DIP-FKP's kernels come out too
sharp by an amount that depends on the scene (0.1 to 0.4 HR px of sigma, BENCHMARKS.md). For
Gaussian kernels the ambiguity is exact and has one direction: blurring the image by an isotropic
Gaussian of variance ``c`` and removing the same from every kernel adds ``-c I`` to every kernel's
covariance. What the frames do fix is everything else: the orientation and elongation of each
kernel and how much wider one frame's kernel is than another's (joint estimation, one image
behind every frame).

So the calibrated bank keeps each estimated covariance up to one common ``c I``, chosen so that
the bank's mean sigma equals the default PSF's (the middle of the plausible range,
:data:`stacksr.core.classic.baselines.DEFAULT_PSF_SIGMA_FRACTION`), and keeps every sigma inside the
plausible range (:func:`stacksr.core.degradation.operators.sigma_range`), the support of the kernel prior.
A bank with no information beyond the prior therefore comes back as the default PSF.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..classic.baselines import DEFAULT_PSF_SIGMA_FRACTION
from ..degradation.operators import gaussian_kernels, sigma_range
from ..io.kernel_bank import fit_gaussian
from ..shapes import check_shape


def kernel_covariances(kernels: torch.Tensor, scale: int) -> np.ndarray:
    """Second-moment covariances ``(T, 2, 2)`` (HR px^2, map axes x right / y up) of kernels ``(T, K, K)``."""
    out = []
    for k in kernels.detach().cpu().double().numpy():
        fit = fit_gaussian(k, scale)
        c, s = math.cos(fit.theta), math.sin(fit.theta)
        rot = np.array([[c, -s], [s, c]])
        out.append(rot @ np.diag([fit.sigma1 ** 2, fit.sigma2 ** 2]) @ rot.T)
    return np.stack(out)


def _sigmas(eig: np.ndarray, c: float, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.sqrt(np.clip(eig + c, 0.0, None)), lo, hi)


def calibrate_kernels(kernels: torch.Tensor, scale: int) -> torch.Tensor:
    """The estimated bank ``(T, K, K)`` as Gaussian kernels ``(T, K, K)`` with the common blur set by
    the prior (module docstring); centred per the alignment convention, same dtype and device."""
    check_shape("kernels", kernels, "T, K, K")
    lo, hi = sigma_range(scale)
    target = DEFAULT_PSF_SIGMA_FRACTION * scale
    cov = kernel_covariances(kernels, scale)
    eig, vec = np.linalg.eigh(cov)  # ascending: eig[:, 1] along the principal axis
    # the mean clipped sigma rises monotonically with c from lo to hi: bisect for the target
    a, b = lo ** 2 - float(eig.max()), hi ** 2 - float(eig.min())
    for _ in range(60):
        c = (a + b) / 2
        a, b = (c, b) if _sigmas(eig, c, lo, hi).mean() < target else (a, c)
    sig = _sigmas(eig, (a + b) / 2, lo, hi)
    theta = np.arctan2(vec[:, 1, 1], vec[:, 0, 1]) % math.pi
    out = gaussian_kernels(torch.from_numpy(sig[:, 1]), torch.from_numpy(sig[:, 0]), torch.from_numpy(theta),
                           kernels.shape[-1], scale)
    return out.to(dtype=kernels.dtype, device=kernels.device)
