"""Shared set-up for benchmarks: real Landsat 8 pan stacks with known degradations.

Run benchmarks through `make bench` (or with PYTHONPATH=.build/pkg and the venv's
python); they read ../shared/data, which tests never need.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build", "pkg"))  # `make deps` links the repo there as `stacksr`

from stacksr.core.simulate import SimulatedStack, simulate_stack
from stacksr.core.stack_io import read_raster

SHARED = os.environ.get("STACKSR_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
L8_PAN = os.path.join(SHARED, "landsat8_pan", "l8_B8.tif")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
NOISE_SIGMA_DN = 20.0  # white noise on the LR frames, in pan DN (image std ~1500 DN)
DATA_RANGE = 65535.0  # uint16 full range, i.e. cPSNR on [0, 1] images as in Proba-V


def l8_pan() -> torch.Tensor:
    arr, _, _, _ = read_raster(L8_PAN)
    return torch.from_numpy(arr).float()


def l8_tiles(size: int) -> list[tuple[str, torch.Tensor]]:
    """Non-overlapping ``size x size`` HR tiles of the real pan band, row-major."""
    pan = l8_pan()
    tiles = []
    for r in range(0, pan.shape[0] - size + 1, size):
        for c in range(0, pan.shape[1] - size + 1, size):
            tiles.append((f"r{r}c{c}", pan[r:r + size, c:c + size]))
    return tiles


def l8_stacks(size: int, frames: int = 9, scale: int = 3, seed: int = 0) -> list[tuple[str, SimulatedStack]]:
    """One simulated stack per tile, each with its own kernels, shifts and noise."""
    out = []
    for i, (name, hr) in enumerate(l8_tiles(size)):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        out.append((name, simulate_stack(hr, scale, frames, g, max_shift=1.0, noise_sigma=NOISE_SIGMA_DN)))
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def save(name: str, payload: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    payload = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), **payload}
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2)
    return path
