"""Kernel estimation's settings (the shipped fast, joint and reference configurations) and its result."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..degradation.dip import DIPConfig


@dataclass(frozen=True)
class EstimationConfig:
    iterations: int = 300
    warmup: int = 100
    crop: int = 40  # LR pixels; 0 = whole image
    lr_image: float = 5e-3
    lr_kernel: float = 1e-2
    dip: DIPConfig = DIPConfig(depth=3, channels=32, skip_channels=8, input_channels=8)
    min_valid: float = 0.9  # minimum valid fraction of the crop
    bf16: bool = False  # run the generator under bfloat16 autocast (CPU or GPU)
    # joint mode: Cauchy constant of the data term, in robust standard deviations (1.4826 x MAD) of
    # each frame's residual, so that where a frame disagrees with the shared image (land that changed
    # between the dates, undetected cloud) it loses weight instead of bending that frame's kernel;
    # 0 = plain least squares
    robust: float = 0.0


# the reference DIP-FKP configuration (5-scale skip U-Net, 128 channels, 1000 iterations)
REFERENCE_CONFIG = EstimationConfig(iterations=1000, warmup=100, crop=0, dip=DIPConfig(depth=5, channels=128, skip_channels=16))
FAST_CONFIG = EstimationConfig()
# joint mode constrains the kernels through all frames, so z can move faster; 2.385 is the Cauchy
# constant of 95 % efficiency under Gaussian noise (not tuned on the benchmarks)
JOINT_CONFIG = EstimationConfig(lr_kernel=5e-2, warmup=50, robust=2.385)


def default_config(mode: str) -> EstimationConfig:
    """The shipped configuration of a mode (see BENCHMARKS.md for how it was chosen)."""
    return JOINT_CONFIG if mode == "joint" else FAST_CONFIG


@dataclass
class EstimationResult:
    kernels: torch.Tensor  # (T, K, K) calibrated (kernel_calibration): what a bank holds
    raw_kernels: torch.Tensor  # (T, K, K) as the flow made them, too sharp by an unknown common blur
    shifts: torch.Tensor | None  # (T, 2) joint mode only
    quality: torch.Tensor | None  # (T,) registration quality, joint mode only
    losses: list[list[float]]  # loss curve per run (per image, or one for joint)
    seconds: float
    crops: list[tuple[int, int, int]]  # (row, col, size) in LR px
    estimated: torch.Tensor  # (T,) bool; False: the frame kept the default PSF (joint mode, not registrable)
