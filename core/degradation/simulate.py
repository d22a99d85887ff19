"""Build LR stacks with known degradations from a real HR image (ground truth for benchmarks)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..convention import default_kernel_size
from .operators import degrade, gaussian_kernels, random_gaussian_params


@dataclass
class SimulatedStack:
    hr: torch.Tensor  # (H, W), cropped to a multiple of the scale
    lr: torch.Tensor  # (T, H/s, W/s)
    kernels: torch.Tensor  # (T, K, K)
    sigmas: torch.Tensor  # (T, 3): sigma1, sigma2, theta
    shifts: torch.Tensor  # (T, 2) LR pixels, frame 0 is the reference (0, 0)
    scale: int


def simulate_stack(
    hr: torch.Tensor,
    scale: int,
    frames: int,
    generator: torch.Generator,
    max_shift: float = 1.0,
    noise_sigma: float = 0.0,
) -> SimulatedStack:
    """``frames`` LR images of ``hr``, each with its own random anisotropic Gaussian
    kernel, a uniform random sub-pixel shift in ``[-max_shift, max_shift]`` (frame 0
    unshifted) and white noise of ``noise_sigma``."""
    H, W = (hr.shape[-2] // scale) * scale, (hr.shape[-1] // scale) * scale
    hr = hr[..., :H, :W].float()
    s1, s2, th = random_gaussian_params(frames, scale, generator)
    kernels = gaussian_kernels(s1, s2, th, default_kernel_size(scale), scale)
    shifts = (torch.rand(frames, 2, generator=generator) * 2 - 1) * max_shift
    shifts[0] = 0.0
    lr = degrade(hr, kernels, scale, shifts, noise_sigma, generator)
    return SimulatedStack(hr, lr, kernels, torch.stack([s1, s2, th], 1), shifts, scale)
