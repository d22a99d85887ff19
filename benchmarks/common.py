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

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from stacksr.core.convention import default_kernel_size
from stacksr.core.degradation.operators import degrade, gaussian_kernels, random_gaussian_params
from stacksr.core.degradation.simulate import SimulatedStack, simulate_stack
from stacksr.core.io.whole_reads import read_raster

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


S2_DIR = os.path.join(SHARED, "sentinel2_timeseries")
S2_NOISE = 0.005  # white noise on the LR NDVI frames (0.5 % of the NDVI range used as data range)
S2_DATA_RANGE = 1.0
S2_MAX_SHIFT = 0.5  # LR px
S2_WINDOW_DAYS = 60
S2_MAX_CLOUD = 0.6  # dates more clouded than this are not used as LR frames


@dataclass
class RealDateStack:
    """An LR stack of real, different dates with known degradations: frame 0 is the truth's date.

    ``valid`` marks LR pixels whose footprint is free of (real) cloud; ``hr`` is the truth date
    at 10 m (cloud-free)."""

    hr: torch.Tensor  # (H, W)
    lr: torch.Tensor  # (T, H/s, W/s)
    valid: torch.Tensor  # (T, H/s, W/s) bool
    kernels: torch.Tensor  # (T, K, K)
    shifts: torch.Tensor  # (T, 2) LR px
    dates: list[str]
    scale: int


def s2_dates() -> list[tuple[int, datetime, float]]:
    """(band index from 0, acquisition time, cloud fraction) of the Sentinel-2 series."""
    out = []
    with open(os.path.join(S2_DIR, "dates.txt"), encoding="utf-8") as fh:
        for line in fh:
            band, when, cloud = line.split()
            out.append((int(band) - 1, datetime.fromisoformat(when), float(cloud)))
    return out


def spread(pool: list, n: int | None) -> list:
    """``n`` items of ``pool`` (at most; None: all), evenly spread over it, first and last included, each once."""
    if n is None or n >= len(pool):
        return list(pool)
    return list(dict.fromkeys(pool[round(i * (len(pool) - 1) / max(n - 1, 1))] for i in range(min(n, len(pool)))))


def _s2_truths(count: int, selection: bool):
    """The Sentinel-2 NDVI and cloud cubes ``(dates, H, W)``, the truth dates of :func:`s2_stacks` (the benchmark's,
    or with ``selection`` as many others) and the function giving a date's usable neighbours, nearest first."""
    from osgeo import gdal

    nd_ds = gdal.Open(os.path.join(S2_DIR, "ndvi_68dates.tif"))  # datasets kept alive while read
    cl_ds = gdal.Open(os.path.join(S2_DIR, "cloudmask_68dates.tif"))
    ndvi = torch.from_numpy(nd_ds.ReadAsArray().astype(np.float32))
    cloud = torch.from_numpy(cl_ds.ReadAsArray().astype(np.float32))
    del nd_ds, cl_ds
    dates = s2_dates()
    usable = [d for d in dates if d[2] <= S2_MAX_CLOUD]

    def neighbours(d):
        near = [u for u in usable if u[0] != d[0] and abs((u[1] - d[1]).days) <= S2_WINDOW_DAYS]
        return sorted(near, key=lambda u: abs((u[1] - d[1]).total_seconds()))

    truths = [d for d in dates if d[2] == 0.0 and float(ndvi[d[0]].std()) >= 0.04 and len(neighbours(d)) >= 4]
    pick = spread(truths, count)  # the benchmark's truth dates
    if selection:
        pick = spread([d for d in truths if d not in pick], count)
    return ndvi, cloud, list(dict.fromkeys(pick)), neighbours


def s2_static_stacks(count: int = 10, frames: int = 9, scale: int = 3, seed: int = 0) -> list[tuple[str, SimulatedStack]]:
    """Stacks cut from ONE image, as the static benchmark's, but of the Sentinel-2 NDVI selection dates (not a
    benchmark: for settings that must hold on frames of one image without looking at the Landsat 8 pan band):
    each truth date of :func:`s2_stacks` ``(selection=True)`` degraded ``frames`` times with its own kernel, a
    shift of up to 1 LR px and noise 0.005."""
    ndvi, _, pick, _ = _s2_truths(count, True)
    out = []
    for i, d in enumerate(pick):
        g = torch.Generator().manual_seed((seed + 2) * 1000 + i)
        out.append((d[1].strftime("%Y-%m-%d"), simulate_stack(ndvi[d[0]], scale, frames, g, max_shift=1.0,
                                                              noise_sigma=S2_NOISE)))
    return out


def s2_stacks(count: int = 10, frames: int = 7, scale: int = 3, seed: int = 0,
              selection: bool = False) -> list[tuple[str, RealDateStack]]:
    """Stacks with REAL temporal change from the Sentinel-2 NDVI series.

    Truths: cloud-free, textured dates (NDVI std >= 0.04, i.e. not snow-covered) with at least
    four usable dates within 60 days, ``count`` of them spread evenly over the series. Each
    stack is the truth date plus its ``frames - 1`` nearest usable dates (cloud fraction <= 0.6)
    within 60 days, every frame degraded x``scale`` with its own random anisotropic Gaussian
    kernel, a shift of up to 0.5 LR px (the truth's frame unshifted) and noise 0.005; LR pixels
    whose footprint (dilated by one LR pixel) holds real cloud are invalid. ``selection``: ``count`` other truth
    dates, spread over those the benchmark does not use, for choosing settings without looking at the benchmark
    (their LR dates may include a benchmark truth's neighbours)."""
    ndvi, cloud, pick, neighbours = _s2_truths(count, selection)
    H, W = (ndvi.shape[1] // scale) * scale, (ndvi.shape[2] // scale) * scale
    seed += 1 if selection else 0  # other kernels, shifts and noise than the benchmark's
    out = []
    for i, d in enumerate(pick):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        members = [d] + neighbours(d)[:frames - 1]
        hr = ndvi[d[0], :H, :W]
        s1, s2, th = random_gaussian_params(len(members), scale, g)
        kernels = gaussian_kernels(s1, s2, th, default_kernel_size(scale), scale)
        shifts = (torch.rand(len(members), 2, generator=g) * 2 - 1) * S2_MAX_SHIFT
        shifts[0] = 0.0
        lr = torch.stack([degrade(ndvi[m[0], :H, :W], kernels[j:j + 1], scale, shifts[j:j + 1], S2_NOISE, g)[0]
                          for j, m in enumerate(members)])
        cl = cloud[[m[0] for m in members], :H, :W][:, None]
        cl_lr = torch.nn.functional.max_pool2d(cl, scale)
        cl_lr = torch.nn.functional.max_pool2d(cl_lr, 3, stride=1, padding=1)[:, 0]
        out.append((d[1].strftime("%Y-%m-%d"), RealDateStack(hr, lr, cl_lr < 0.5, kernels, shifts,
                                                              [m[1].strftime("%Y-%m-%d") for m in members], scale)))
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


def both_benchmarks() -> dict:
    """{"static": (stacks, data range), "realdates": (...)}, each stack ``(name, hr, lr, valid)``."""
    return {"static": ([(n, st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool)) for n, st in l8_stacks(399)], DATA_RANGE),
            "realdates": ([(n, st.hr, st.lr, st.valid) for n, st in s2_stacks()], S2_DATA_RANGE)}


def kept_frames(lr: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frames the job keeps (registration to frame 0 with the default minimum quality) and their shifts."""
    from stacksr.core.params import REGISTRATION_QUALITY
    from stacksr.core.classic.registration import register_stack

    reg = register_stack(lr, valid, 0)
    used = reg.kept(REGISTRATION_QUALITY.default)
    used[0] = True
    return lr[used], valid[used], reg.shifts[used]


# the real-sensor benchmark (issue 26): real optics on both sides, no simulated degradation
DEIMOS = os.path.join(SHARED, "sensor_pairs", "s2_deimos_x3", "data_3m_eopatch-0277_66_2x.npz")
ROMANIA = os.path.join(SHARED, "real_series", "nrt_s2_romania")
ROMANIA_WINDOW_DAYS = 60
ROMANIA_DATA_RANGE = 10000.0  # L2A reflectance x 1e4


@dataclass
class SensorStack:
    """A real LR stack and a real HR image of the same place: frame 0 is the date whose HR is the truth (or,
    across sensors, the clearest date); ``fit_gain`` asks for the affine-fit cPSNR (another sensor's HR)."""

    hr: torch.Tensor
    lr: torch.Tensor
    valid: torch.Tensor
    scale: int
    data_range: float
    fit_gain: bool


def deimos_stacks() -> list[tuple[str, SensorStack]]:
    """Real Sentinel-2 L1C (4 dates, 32 x 32 px at 10 m) against a real Deimos-2 image (96 x 96 px at 3.33 m),
    one stack per band (B, G, R, NIR), x3. The Deimos-2 labels are normalised per band, so the score fits a
    gain and offset; the data range is the label's 0.1-99.9 % spread."""
    d = np.load(DEIMOS)
    feats, labels = torch.from_numpy(d["features"]).float(), torch.from_numpy(d["labels"]).float()
    out = []
    for b, name in enumerate(("B", "G", "R", "NIR")):
        hr = labels[b]
        lo, hi = torch.quantile(hr.flatten(), torch.tensor([0.001, 0.999]))
        lr = feats[:, b]
        out.append((f"deimos_{name}", SensorStack(hr, lr, torch.ones_like(lr, dtype=torch.bool), 3, float(hi - lo), True)))
    return out


def romania_x2_stacks(count: int | None = 5, frames: int = 7, selection: bool = False) -> list[tuple[str, SensorStack]]:
    """Real x2 from one processing chain: the Sentinel-2 L2A 20 m B3 / B4 of the truth date and its nearest
    usable dates within 60 days (LR, 50 x 25 px) against the same truth date's 10 m band (100 x 50 px), on the
    east half of the Romania area (held out of pretraining, scripts/pretrain_corpus.py). Truth dates: fully
    usable at 10 m and 20 m (SCL 4, 5, 6, 7, 11), ``count`` of them spread over the series; LR pixels whose
    SCL is not usable are invalid. ``selection``: ``count`` (None: all) other truth dates, spread over those the
    benchmark does not use, for choosing among pretraining checkpoints without looking at the benchmark (their LR dates
    may include a benchmark truth's neighbours)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from pretrain_corpus import ROMANIA_HOLDOUT_COLUMN_10M as C10, SCL_USABLE

    s10 = np.load(os.path.join(ROMANIA, "s2_10m_T140_C4_100x100_uint16.npy"))[..., C10:]
    scl10 = np.load(os.path.join(ROMANIA, "s2_10m_SCL_T140_100x100_uint8.npy"))[..., C10:]
    s20 = np.load(os.path.join(ROMANIA, "s2_20m_T140_C4_50x50_uint16.npy"))[..., C10 // 2:]
    scl20 = np.load(os.path.join(ROMANIA, "s2_20m_SCL_T140_50x50_uint8.npy"))[..., C10 // 2:]
    with open(os.path.join(ROMANIA, "dates_10m.txt"), encoding="utf-8") as fh:
        dates = [datetime.fromisoformat(line.strip()) for line in fh if line.strip()]
    ok10, ok20 = np.isin(scl10, SCL_USABLE), np.isin(scl20, SCL_USABLE)
    clear20 = ok20.mean(axis=(1, 2))
    truths = [t for t in range(len(dates)) if ok10[t].all() and ok20[t].all()
              and sum(1 for u in range(len(dates)) if u != t and clear20[u] >= 0.5
                      and abs((dates[u] - dates[t]).days) <= ROMANIA_WINDOW_DAYS) >= 3]
    pick = spread(truths, 5 if selection else count)  # the benchmark's truth dates
    if selection:
        pick = spread([t for t in truths if t not in pick], count)
    out = []
    for t in pick:
        near = sorted((u for u in range(len(dates)) if u != t and clear20[u] >= 0.5
                       and abs((dates[u] - dates[t]).days) <= ROMANIA_WINDOW_DAYS),
                      key=lambda u: abs((dates[u] - dates[t]).days))[:frames - 1]
        members = [t] + near
        for b20, b10, name in ((0, 1, "B3"), (1, 2, "B4")):
            lr = torch.from_numpy(s20[members, b20].astype(np.float32))
            hr = torch.from_numpy(s10[t, b10].astype(np.float32))
            valid = torch.from_numpy(ok20[members] & (s20[members, b20] > 0))
            out.append((f"romania_{dates[t]:%Y-%m-%d}_{name}",
                        SensorStack(hr, lr, valid, 2, ROMANIA_DATA_RANGE, False)))
    return out


@dataclass
class JobSetup:
    """What the super-resolution job sets up before running a method on a stack: the frames it keeps and their
    shifts, the default PSF, robust fusion's weights (None for one frame) and IBP's held-out iteration count."""

    lr: torch.Tensor
    valid: torch.Tensor
    shifts: torch.Tensor
    psf: torch.Tensor
    weights: torch.Tensor | None
    iterations: int


def as_the_job_sets_up(lr: torch.Tensor, valid: torch.Tensor, scale: int) -> JobSetup:
    """:class:`JobSetup` of a stack ``(T, h, w)`` (frame 0 the reference), as the job sets it up by default."""
    from stacksr.core.classic.agreement import agreement_weights
    from stacksr.core.classic.baselines import choose_ibp_iterations, default_psf

    lr, valid, shifts = kept_frames(lr, valid)
    psf = default_psf(scale)
    means = torch.stack([f[v].mean() if v.any() else f.mean() for f, v in zip(lr, valid)])
    weights = agreement_weights(lr, valid, 0, shifts, float(means[0]))[0] if lr.shape[0] > 1 else None
    return JobSetup(lr, valid, shifts, psf, weights, choose_ibp_iterations(lr, valid, scale, shifts, psf, means, weights)[0])

