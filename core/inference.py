"""PIUNet inference on an LR stack, whole or in overlapping tiles blended without seams."""
from __future__ import annotations

import math

import torch

from .baselines import temporal_fill
from .piunet import PIUNet
from .training import normalize_stack


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, fade: int) -> torch.Tensor:
    """1-D blending weight: rises linearly over ``fade`` pixels at both ends."""
    i = torch.arange(length, dtype=torch.float32) + 0.5
    if fade <= 0:
        return torch.ones(length)
    return torch.minimum(torch.ones(length), torch.minimum(i, length - i) / fade)


def predict(
    net: PIUNet,
    frames: torch.Tensor,
    valid: torch.Tensor,
    tile: int = 0,
    overlap: int = 16,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """SR image and Laplace log-scale ``(s*H, s*W)`` in the input's units.

    ``tile`` (LR pixels, 0 = whole stack) bounds memory: tiles overlap by ``overlap``
    LR pixels and are blended with linear ramps. The stack is normalised once with
    global statistics, so tiles agree radiometrically.
    """
    s = net.config.scale
    x = temporal_fill(frames.float(), valid)
    xn, mean, std = normalize_stack(x, valid)
    T, H, W = xn.shape
    net = net.to(device).eval()
    tile = min(tile, H, W) if tile > 0 else max(H, W)
    overlap = min(overlap, tile // 2)
    sr = torch.zeros(H * s, W * s)
    log_scale = torch.zeros(H * s, W * s)
    weight = torch.zeros(H * s, W * s)
    with torch.no_grad():
        for r in _starts(H, tile, overlap):
            for c in _starts(W, tile, overlap):
                th, tw = min(tile, H - r), min(tile, W - c)
                out, ls = net(xn[None, :, r:r + th, c:c + tw].to(device))
                wy = _ramp(th * s, overlap * s // 2) if th < H else torch.ones(th * s)
                wx = _ramp(tw * s, overlap * s // 2) if tw < W else torch.ones(tw * s)
                if r == 0:
                    wy[: th * s // 2] = 1.0  # no fade at the raster's own border
                if r + th == H:
                    wy[th * s // 2:] = 1.0
                if c == 0:
                    wx[: tw * s // 2] = 1.0
                if c + tw == W:
                    wx[tw * s // 2:] = 1.0
                w = torch.outer(wy, wx)
                hs, ws = slice(r * s, (r + th) * s), slice(c * s, (c + tw) * s)
                sr[hs, ws] += out[0].float().cpu() * w
                log_scale[hs, ws] += ls[0].float().cpu() * w
                weight[hs, ws] += w
    weight = weight.clamp(min=1e-8)
    return sr / weight * std + mean, log_scale / weight + math.log(std)
