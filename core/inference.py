"""Plain PIUNet inference on an LR stack (no test-time finetuning)."""
from __future__ import annotations

import math

import torch

from .baselines import temporal_fill
from .piunet import PIUNet
from .training import normalize_stack


def predict(net: PIUNet, frames: torch.Tensor, valid: torch.Tensor, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """SR image and Laplace log-scale ``(s*H, s*W)`` in the input's units from ``(T, H, W)`` frames."""
    x = temporal_fill(frames.float(), valid)
    xn, mean, std = normalize_stack(x, valid)
    net = net.to(device).eval()
    with torch.no_grad():
        sr, log_scale = net(xn[None].to(device))
    return (sr[0] * std + mean).cpu(), (log_scale[0] + math.log(std)).cpu()
