"""Choosing the torch device: auto (GPU when there is one), cpu or cuda."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .choices import DEVICES as DEVICE_CHOICES

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> tuple[torch.device, str]:
    """Return the device and a one-line reason, for the log."""
    import torch  # noqa: F811 - imported here so that DEVICE_CHOICES needs no torch

    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got '{name}'")
    has_cuda = torch.cuda.is_available()
    if name == "cuda":
        if not has_cuda:
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU (use 'auto' or 'cpu')")
        return torch.device("cuda"), f"cuda as requested ({torch.cuda.get_device_name(0)})"
    if name == "cpu":
        return torch.device("cpu"), f"cpu as requested ({torch.get_num_threads()} threads)"
    if has_cuda:
        return torch.device("cuda"), f"auto: found a CUDA GPU ({torch.cuda.get_device_name(0)})"
    return torch.device("cpu"), f"auto: no CUDA GPU visible to torch, using the CPU ({torch.get_num_threads()} threads)"
