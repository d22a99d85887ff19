"""The scales and kernel geometry of the alignment convention (see :mod:`degradation`), without
torch, so that torch-free code (the kernel-bank file, the Kernel viewer) shares them."""
from __future__ import annotations

SUPPORTED_SCALES = (2, 3, 4)


def check_scale(scale: int) -> int:
    """Return ``scale`` as int or raise ValueError if it is not 2, 3 or 4."""
    if int(scale) != scale or int(scale) not in SUPPORTED_SCALES:
        raise ValueError(f"scale must be one of {SUPPORTED_SCALES}, got {scale}")
    return int(scale)


def default_kernel_size(scale: int) -> int:
    """Kernel size used throughout for a scale: 4*s + 3 (11, 15, 19)."""
    return 4 * check_scale(scale) + 3


def kernel_center_offset(scale: int) -> float:
    """Offset of a centred kernel's centroid from the middle array pixel (0 or 0.5)."""
    return ((scale - 1) % 2) / 2.0
