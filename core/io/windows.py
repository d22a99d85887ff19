"""Stacks read window by window, and the tiling that runs every super-resolution method on them.

A *source* is anything with ``count``, ``height``, ``width`` and ``read(rows, cols, frames=None)``
returning the window's pixels ``(T, h, w)`` (float32, invalid pixels 0) and validity (bool): the
GDAL :class:`stack_io.StackReader` (a file on disk), :class:`TensorStack` (a stack in memory) and
:class:`Subset` (some frames of another source). Jobs never hold a whole stack: they take one pass
for the statistics (:func:`stack_stats`), read the windows they register and calibrate on, and run
the method tile by tile (:func:`run_tiles`), each tile read with a halo and its core handed to a sink
(a GeoTIFF being written, or an array). Global quantities (normalisation, gap-filling means, the
network's pools, the registration) come from the whole source, never from the tile, so a tiled
result equals the untiled one (to float rounding; IBP to its halo's tolerance, :data:`IBP_HALO`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from .. import distributed, heap
from ..progress import Monitor, ensure_monitor

STATS_BLOCK = 256  # rows per block (a multiple of COVERAGE_CELL) of the statistics pass (fixed, so the statistics do not depend on tiling)
COVERAGE_CELL = 16  # input pixels per cell of the coverage map that windows are chosen on
IBP_HALO = 32  # input pixels of halo (beyond the frames' shifts) that make IBP tiles match the untiled result. Each
# iteration spreads a correction by about 8 input pixels, but it decays; measured (largest difference, tile vs whole):
# a real Landsat 8 pan stack (x3, 9 frames, 40 iterations, values ~10^4) 0.009 DN from a halo of 12 (float rounding);
# white noise (std 100), the slowest case, x3 9 frames 0.05 / 0.03 / 0.02 DN and x4 3 frames 0.45 / 0.14 / 0.03 DN
# at halos 16 / 32 / 48


class Source(Protocol):
    count: int
    height: int
    width: int

    def read(self, rows: slice = ..., cols: slice = ..., frames: Sequence[int] | None = None): ...


class TensorStack:
    """A stack in memory, ``frames`` ``(T, H, W)`` with validity ``valid``, as a source."""

    def __init__(self, frames: torch.Tensor, valid: torch.Tensor):
        self.frames, self.valid = frames, valid
        self.count, self.height, self.width = (int(v) for v in frames.shape)

    def read(self, rows: slice = slice(None), cols: slice = slice(None), frames: Sequence[int] | None = None):
        idx = slice(None) if frames is None else list(frames)
        return self.frames[idx, rows, cols].float(), self.valid[idx, rows, cols]


class Subset:
    """The frames ``indices`` of ``source``, in that order."""

    def __init__(self, source, indices: Sequence[int]):
        self.source, self.indices = source, [int(i) for i in indices]
        self.count, self.height, self.width = len(self.indices), source.height, source.width

    def read(self, rows: slice = slice(None), cols: slice = slice(None), frames: Sequence[int] | None = None):
        idx = self.indices if frames is None else [self.indices[i] for i in frames]
        return self.source.read(rows, cols, idx)


def read_window(source, rows: slice = slice(None), cols: slice = slice(None),
                frames: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A window of any source as torch tensors: float32 ``(T, h, w)`` and bool validity."""
    data, valid = source.read(rows, cols, frames)
    return torch.as_tensor(data, dtype=torch.float32), torch.as_tensor(valid, dtype=torch.bool)


@dataclass(frozen=True)
class StackStats:
    """What a whole stack contributes to every tile: per frame the sum, sum of squares and count of
    its valid pixels (float64; the network's normalisation over the frames a job uses, and each
    frame's mean, the gap filling where no date is valid), each frame's share of valid pixels (the
    clearest date) and a coverage map, the valid pixels of all frames per :data:`COVERAGE_CELL` x
    :data:`COVERAGE_CELL` cell (where to register and calibrate)."""

    sums: np.ndarray  # (T,)
    squares: np.ndarray  # (T,)
    counts: np.ndarray  # (T,)
    clear_fraction: np.ndarray  # (T,)
    coverage: np.ndarray  # (ceil(H / cell), ceil(W / cell)) valid pixels summed over frames

    @property
    def mean(self) -> float:
        n = self.counts.sum()
        return float(self.sums.sum() / n) if n else 0.0

    @property
    def std(self) -> float:
        n, mean = self.counts.sum(), self.mean
        var = float((self.squares.sum() - n * mean * mean) / (n - 1)) if n > 1 else 1.0
        std = math.sqrt(max(var, 0.0))
        return std if std > 1e-6 else 1.0

    @property
    def frame_means(self) -> torch.Tensor:
        """``(T,)`` float32."""
        return torch.tensor(np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), 0.0), dtype=torch.float32)

    def subset(self, indices: Sequence[int]) -> "StackStats":
        """The statistics of the frames ``indices`` alone (as :func:`stack_stats` of that subset would be)."""
        idx = list(indices)
        return StackStats(self.sums[idx], self.squares[idx], self.counts[idx], self.clear_fraction[idx], self.coverage)


def stack_stats(source, monitor: Monitor | None = None) -> StackStats:
    """One pass over ``source`` in blocks of :data:`STATS_BLOCK` rows, accumulated in float64 (the
    same numbers whatever the tiling that follows); ``monitor``: its cancel is honoured between blocks (the pass
    reads every pixel of the stack once: minutes on a large raster)."""
    mon = ensure_monitor(monitor)
    T, H, W = source.count, source.height, source.width
    sums, sq, counts = np.zeros(T), np.zeros(T), np.zeros(T)
    coverage = np.zeros((math.ceil(H / COVERAGE_CELL), math.ceil(W / COVERAGE_CELL)))
    for r in range(0, H, STATS_BLOCK):
        mon.check()
        mon.progress(r / H, f"statistics: rows {r}-{min(r + STATS_BLOCK, H) - 1} of {H}")
        data, valid = read_window(source, slice(r, min(r + STATS_BLOCK, H)))
        v = valid.numpy()
        for t in range(T):
            d = np.where(v[t], data[t].numpy(), 0.0).astype(np.float64)
            sums[t] += d.sum()
            sq[t] += (d * d).sum()
        counts += v.sum(axis=(1, 2))
        per_px = v.sum(axis=0)
        h = per_px.shape[0]
        pad = np.zeros((math.ceil(h / COVERAGE_CELL) * COVERAGE_CELL, coverage.shape[1] * COVERAGE_CELL))
        pad[:h, :W] = per_px
        cells = pad.reshape(pad.shape[0] // COVERAGE_CELL, COVERAGE_CELL, -1, COVERAGE_CELL).sum(axis=(1, 3))
        coverage[r // COVERAGE_CELL:r // COVERAGE_CELL + cells.shape[0]] = cells
    return StackStats(sums, sq, counts, counts / float(H * W), coverage)


def normalised(frames: torch.Tensor, valid: torch.Tensor, stats: StackStats) -> torch.Tensor:
    """A window ``(T, h, w)`` as the network sees it: gaps filled across dates (else with the frame's
    whole-stack mean), then standardised with the whole stack's mean and deviation."""
    from .stack_ops import temporal_fill

    return (temporal_fill(frames.float(), valid, stats.frame_means) - stats.mean) / stats.std


def best_window(stats: StackStats, height: int, width: int, size: int) -> tuple[slice, slice]:
    """The ``size``-px window (stepped by a quarter of it, on the coverage map's cells) with the most
    valid pixels over all frames, preferring the centre; the whole raster when it is smaller."""
    if height <= size and width <= size:
        return slice(0, height), slice(0, width)
    h, w = min(height, size), min(width, size)
    cov = stats.coverage
    integral = np.pad(cov.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step_r, step_c = max(h // 4, 1), max(w // 4, 1)
    best, pick = -1.0, ((height - h) // 2, (width - w) // 2)
    for r in list(range(0, height - h + 1, step_r)) + [(height - h) // 2]:
        for c in list(range(0, width - w + 1, step_c)) + [(width - w) // 2]:
            a, b = r // COVERAGE_CELL, min(math.ceil((r + h) / COVERAGE_CELL), cov.shape[0])
            e, f = c // COVERAGE_CELL, min(math.ceil((c + w) / COVERAGE_CELL), cov.shape[1])
            score = integral[b, f] - integral[a, f] - integral[b, e] + integral[a, e]
            score -= 1e-6 * (abs(r - (height - h) / 2) + abs(c - (width - w) / 2))
            if score > best:
                best, pick = score, (r, c)
    return slice(pick[0], pick[0] + h), slice(pick[1], pick[1] + w)


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


def hr_validity(valid: torch.Tensor, scale: int) -> torch.Tensor:
    """HR pixels covered by at least one valid LR pixel of ``valid`` ``(T, h, w)``."""
    any_valid = valid.any(dim=0)
    return any_valid.repeat_interleave(scale, dim=0).repeat_interleave(scale, dim=1)


Compute = Callable[[torch.Tensor, torch.Tensor, Window, Monitor], Sequence[torch.Tensor]]
Sink = Callable[[Window, Sequence[torch.Tensor], torch.Tensor], None]


def run_tiles(source, scale: int, tile: int, halo: int, compute: Compute, sink: Sink,
              monitor: Monitor | None = None, share_tiles: bool = True) -> None:
    """Run ``compute(frames, valid, window, monitor)`` (a window's HR outputs) on every ``tile``-px tile of
    ``source`` read with ``halo`` input pixels around it (``tile`` <= 0: one tile), and hand each
    tile's core to ``sink(dest, outputs, covered)`` (``dest``: where it goes in the HR raster;
    ``covered``: its HR pixels that a valid input pixel covers).

    Under torchrun each process computes every n-th tile and every tile reaches every process's sink
    in order (a job's file sink writes on rank 0 only); ``share_tiles`` False: this process computes
    them all (a caller that shares the work itself)."""
    mon = ensure_monitor(monitor)
    H, W = source.height, source.width
    tile = max(H, W) if tile <= 0 else tile
    windows = tile_windows(H, W, tile, halo, scale)
    procs = distributed.current() if share_tiles else distributed.DistInfo()
    for i, (win, core, dest) in enumerate(windows):
        mon.check()
        result = None
        if procs.owns(i):
            frames, valid = read_window(source, *win)
            sub = mon.sub(i / len(windows), (i + 1) / len(windows))  # progress and cancel inside a tile
            outs = [o[core].float().cpu() for o in compute(frames, valid, win, sub)]
            lr_core = tuple(slice(k.start // scale, k.stop // scale) for k in core)
            result = (outs, hr_validity(valid[:, lr_core[0], lr_core[1]], scale))
        if procs.world > 1:
            result = distributed.from_rank(result, i % procs.world)
        sink(dest, *result)
        heap.tidy()
        mon.progress((i + 1) / len(windows), f"tile {i + 1}/{len(windows)}")


class ArraySink:
    """A sink that assembles ``n`` HR rasters ``(H, W)`` in memory (the untiled API's result)."""

    def __init__(self, n: int, height: int, width: int):
        self.arrays = [torch.zeros(height, width) for _ in range(n)]

    def __call__(self, dest: Window, outputs: Sequence[torch.Tensor], covered: torch.Tensor) -> None:
        for a, o in zip(self.arrays, outputs):
            a[dest] = o
