"""PIUNet inference on an LR stack, whole or in tiles that reproduce the whole-stack result.

Tiling is exact rather than blended: the network's global pools come from one
context per raster (:func:`stack_context`), and each tile is read with a halo of
the network's receptive radius, which the network drops layer by layer as its
pixels stop being exact (``PIUNet.forward``'s ``inner``), so only the core comes out.
Every output pixel therefore sees the same inputs as in a single pass over the raster,
so there are no seams to hide, and memory is bounded by the tile.
"""
from __future__ import annotations

import math

import torch

from ..classic.baselines import classic_halo
from .piunet import PIUNet, residual_base
from ..progress import Monitor
from ..classic.registration import register_source
from ..shapes import check_shape
from ..io.windows import ArraySink, StackStats, TensorStack, normalised, read_window, run_tiles, stack_stats

WEIGHT_LAYOUT = torch.channels_last  # the convolutions then skip a layout reorder per call (BENCHMARKS.md: about
# 1.4 x faster whole-raster inference on the 2-core CPU than contiguous weights, outputs equal to float rounding)
CONTEXT_CROP = 64  # LR pixels per context crop
CONTEXT_GRID = 3  # crops per axis on rasters larger than two crops


def _context_starts(length: int, crop: int, count: int) -> list[int]:
    if count <= 1 or length <= crop:
        return [0]
    return sorted({round(i * (length - crop) / (count - 1)) for i in range(count)})


def stack_context(net: PIUNet, source, stats: StackStats, device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """Global pools of a stack (a source of :mod:`windows`, normalised with ``stats``): from the whole
    stack when it is at most two crops wide, else from a regular grid of crops read from it (a
    bounded cost that does not depend on the tiling)."""
    H, W = source.height, source.width
    crop = CONTEXT_CROP
    if max(H, W) <= 2 * crop:
        crops = normalised(*read_window(source), stats)[None]
    else:
        ch, cw = min(crop, H), min(crop, W)
        crops = torch.stack([normalised(*read_window(source, slice(r, r + ch), slice(c, c + cw)), stats)
                             for r in _context_starts(H, ch, CONTEXT_GRID) for c in _context_starts(W, cw, CONTEXT_GRID)])
    with torch.no_grad():
        return net.context(crops.to(device))


def window_base(net: PIUNet, xn: torch.Tensor, valid: torch.Tensor, shifts: torch.Tensor, stats: StackStats
                ) -> torch.Tensor | None:
    """The global residual of a ``residual="ibp"`` network for a normalised window ``(T, h, w)``
    (frames at ``shifts`` from the output grid); None for the published network."""
    return residual_base(net.config, xn, valid, shifts, (stats.frame_means - stats.mean) / stats.std)


def _on_window(core: torch.Tensor, inner, cut: int, lr_shape, scale: int) -> torch.Tensor:
    """A window's HR raster (zero where the network left pixels out) around ``core``, the output
    that lacks ``cut`` HR px along the ``inner`` sides (top, bottom, left, right)."""
    out = torch.zeros(lr_shape[0] * scale, lr_shape[1] * scale, device=core.device)
    top, left = cut * inner[0], cut * inner[2]
    out[top:top + core.shape[0], left:left + core.shape[1]] = core
    return out


def predict_source(
    net: PIUNet,
    source,
    stats: StackStats,
    sink,
    tile: int = 0,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
    reference: int = 0,
    shifts: torch.Tensor | None = None,
    share_tiles: bool = True,
) -> None:
    """PIUNet over a source (:mod:`windows`) in ``tile``-px tiles (0: one), each handed to ``sink``
    as (SR, Laplace log-scale) in the input's units: every tile is computed with a halo of the
    network's receptive radius (plus IBP's for an IBP-residual network), normalised with the whole
    stack's ``stats`` and given the whole stack's pools, so the result equals the untiled one.
    ``shifts``: the frames' registration to frame ``reference`` (an IBP-residual network's base
    follows it; registered here when None)."""
    compute, halo = learned_compute(net, source, stats, device, monitor, reference, shifts)
    run_tiles(source, net.config.scale, tile, halo, compute, sink, monitor, share_tiles)


def learned_compute(net: PIUNet, source, stats: StackStats, device: str | torch.device = "cpu",
                    monitor: Monitor | None = None, reference: int = 0, shifts: torch.Tensor | None = None):
    """What :func:`predict_source` runs on each tile (a :data:`windows.Compute`: SR and Laplace log-scale on the
    window read) and the halo it needs; any wider halo gives the same result."""
    s = net.config.scale
    net = net.to(device).eval().to(memory_format=WEIGHT_LAYOUT)
    context = stack_context(net, source, stats, device)
    ibp_residual = net.config.residual == "ibp"
    if ibp_residual and shifts is None:
        shifts = register_source(source, stats, reference, monitor=monitor).shifts
    halo = net.receptive_radius() + (classic_halo("ibp", shifts) if ibp_residual else 0)

    def compute(frames: torch.Tensor, valid: torch.Tensor, window, mon: Monitor) -> tuple[torch.Tensor, torch.Tensor]:
        xn = normalised(frames, valid, stats)
        base = window_base(net, xn, valid, shifts, stats) if ibp_residual else None
        rows, cols = window
        inner = (rows.start > 0, rows.stop < source.height, cols.start > 0, cols.stop < source.width)
        with torch.no_grad():  # the network skips the pixels along the inner sides that only the halo needs
            out, ls = net(xn[None].to(device), context, None if base is None else base[None].to(device), inner)
        return tuple(_on_window(o[0].float(), inner, net.receptive_radius() * s, xn.shape[-2:], s)
                     for o in (out * stats.std + stats.mean, ls + math.log(stats.std)))

    return compute, halo


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
    and their validity ``valid`` (bool, same shape): :func:`predict_source` on a stack in memory.

    ``tile`` (LR pixels, 0 = whole stack) bounds the working memory; the result equals the untiled
    one. Under torchrun every process predicts every n-th tile and every process gets the whole
    result (``share_tiles`` False: this process predicts them all, for a caller that shares the work
    itself). ``reference``: the frame whose grid an IBP-residual network's output follows.
    """
    check_shape("frames", frames, "T, H, W")
    check_shape("valid", valid, "T, H, W", like=frames)
    source = TensorStack(frames, valid)
    s = net.config.scale
    sink = ArraySink(2, source.height * s, source.width * s)
    predict_source(net, source, stack_stats(source), sink, tile, device, monitor, reference, share_tiles=share_tiles)
    sr, log_scale = sink.arrays
    return sr, log_scale
