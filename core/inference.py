"""PIUNet inference on an LR stack, whole or in tiles that reproduce the whole-stack result.

Tiling is exact rather than blended: the network's global pools come from one
context per raster (:func:`stack_context`), and each tile is computed with a halo of
the network's receptive radius, of which only the core is kept. Every output pixel
therefore sees the same inputs as in a single pass over the raster, so there are no
seams to hide, and memory is bounded by the tile.
"""
from __future__ import annotations

import math

import torch

from . import distributed
from .piunet import PIUNet, residual_base
from .progress import Monitor, ensure_monitor
from .registration import register_frames
from .shapes import check_shape
from .stack_ops import standardize_stack, temporal_fill

CONTEXT_CROP = 64  # LR pixels per context crop
CONTEXT_GRID = 3  # crops per axis on rasters larger than two crops


def _context_starts(length: int, crop: int, count: int) -> list[int]:
    if count <= 1 or length <= crop:
        return [0]
    return sorted({round(i * (length - crop) / (count - 1)) for i in range(count)})


def stack_context(net: PIUNet, xn: torch.Tensor, device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """Global pools of a normalised, gap-filled stack ``(T, H, W)``: from the whole stack when
    it is at most two crops wide, else from a regular grid of crops (a bounded cost that does not
    depend on the tiling)."""
    T, H, W = xn.shape
    crop = CONTEXT_CROP
    if max(H, W) <= 2 * crop:
        crops = xn[None]
    else:
        ch, cw = min(crop, H), min(crop, W)
        crops = torch.stack([xn[:, r:r + ch, c:c + cw]
                             for r in _context_starts(H, ch, CONTEXT_GRID) for c in _context_starts(W, cw, CONTEXT_GRID)])
    with torch.no_grad():
        return net.context(crops.to(device))


def stack_base(net: PIUNet, xn: torch.Tensor, valid: torch.Tensor, reference: int = 0) -> torch.Tensor | None:
    """The global residual of a ``residual="ibp"`` network for a whole normalised stack, on the
    grid of frame ``reference`` (frames registered to it); None for the published network."""
    if net.config.residual != "ibp":
        return None
    return residual_base(net.config, xn, valid, register_frames(xn, valid, reference))


Window = tuple[slice, slice]


def tile_windows(H: int, W: int, tile: int, halo: int, scale: int) -> list[tuple[Window, Window, Window]]:
    """Row-major tiles of ``tile`` LR px: for each, the LR window (tile plus ``halo``, clipped to
    the raster), the tile's core inside the window's HR output, and where that core goes in the
    raster's HR output."""
    out = []
    for r in range(0, H, tile):
        for c in range(0, W, tile):
            r0, r1, c0, c1 = max(r - halo, 0), min(r + tile + halo, H), max(c - halo, 0), min(c + tile + halo, W)
            th, tw = min(tile, H - r), min(tile, W - c)
            out.append(((slice(r0, r1), slice(c0, c1)),
                        (slice((r - r0) * scale, (r - r0 + th) * scale), slice((c - c0) * scale, (c - c0 + tw) * scale)),
                        (slice(r * scale, (r + th) * scale), slice(c * scale, (c + tw) * scale))))
    return out


def predict(
    net: PIUNet,
    frames: torch.Tensor,
    valid: torch.Tensor,
    tile: int = 0,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
    reference: int = 0,
    share_tiles: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SR image and Laplace log-scale ``(s*H, s*W)`` in the input's units, from ``frames`` ``(T, H, W)``
    and their validity ``valid`` (bool, same shape).

    ``tile`` (LR pixels, 0 = whole stack) bounds memory: each tile is processed with a
    halo of ``net.receptive_radius()`` pixels, so the result equals the untiled one. Under
    torchrun every process predicts every n-th tile and the tiles are summed across processes
    (``share_tiles`` False: this process predicts them all, for a caller that shares the work itself). The
    stack is normalised once with global statistics. ``reference``: the frame whose grid an
    IBP-residual network's output follows.
    """
    check_shape("frames", frames, "T, H, W")
    check_shape("valid", valid, "T, H, W", like=frames)
    mon = ensure_monitor(monitor)
    s = net.config.scale
    x = temporal_fill(frames.float(), valid)
    xn, mean, std = standardize_stack(x, valid)
    T, H, W = xn.shape
    net = net.to(device).eval()
    context = stack_context(net, xn, device)
    base = stack_base(net, xn, valid, reference)
    tile = max(H, W) if tile <= 0 else tile
    sr = torch.zeros(H * s, W * s)
    log_scale = torch.zeros(H * s, W * s)
    windows = tile_windows(H, W, tile, net.receptive_radius(), s)
    procs = distributed.current() if share_tiles else distributed.DistInfo()
    with torch.no_grad():
        for i, ((rows, cols), core, dest) in enumerate(windows):
            mon.check()
            if not procs.owns(i):
                continue
            b = None if base is None else base[None, rows.start * s:rows.stop * s, cols.start * s:cols.stop * s].to(device)
            out, ls = net(xn[None, :, rows, cols].to(device), context, b)
            sr[dest] = out[0][core].float().cpu()
            log_scale[dest] = ls[0][core].float().cpu()
            mon.progress((i + 1) / len(windows), f"tile {i + 1}/{len(windows)}")
    if share_tiles:
        sr, log_scale = distributed.sum_across(sr, torch.device(device)), distributed.sum_across(log_scale, torch.device(device))
    return sr * std + mean, log_scale + math.log(std)
