"""Kernel estimation on real Landsat 8 pan stacks with known kernels (x3, 15x15): the harness's ``kernels`` suite
(``benchmarks/run.py --suites kernels``).

Configurations, all in the same run and on the same images:
- reference: the plain DIP-FKP set-up (5-scale skip U-Net, 128 channels, 1000
  iterations), on a 24x24 LR crop so that it fits in the time budget;
- fast: the shipped per-image configuration (3-scale, 32 channels, 300 iterations,
  40x40 crop), with and without bf16 autocast;
- joint: one shared generator for the whole stack (shipped configuration, z learning rate 0.05);
- default PSF: no estimation, the isotropic Gaussian IBP assumes (a floor to beat).
Per-image time is wall time / images. Images are 128x128 LR (384x384 HR tiles).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import replace

import torch

from common import l8_stacks
from stacksr.core.classic.baselines import default_psf
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.estimation.kernel_estimation import estimate_kernels
from stacksr.core.estimation.estimation_config import FAST_CONFIG, JOINT_CONFIG, REFERENCE_CONFIG
from stacksr.core.degradation.kernels import kernel_errors

TILE = 384


def summarize(errs: list[dict], seconds: float, images: int) -> dict:
    angles = [e["angle_deg"] for e in errs if not math.isnan(e["angle_deg"])]
    return {"nl2": statistics.mean(e["nl2"] for e in errs), "sigma_abs": statistics.mean(e["sigma_abs"] for e in errs),
            "angle_deg": statistics.mean(angles) if angles else float("nan"), "s_per_image": seconds / images,
            "images": images}


STACKS, REFERENCE_IMAGES = 2, 3  # 9-frame stacks (tiles); frames per stack run with the slow reference


def suite(names: list[str], opts) -> dict:
    """The harness's ``kernels`` suite (``benchmarks/run.py``)."""
    flow = load_fkp(default_fkp_path(3), 3)
    stacks = l8_stacks(TILE)[:STACKS]
    configs = {
        "reference DIP-FKP (5x128, 1000 it, 24 px crop)": (replace(REFERENCE_CONFIG, crop=24), "per-image", REFERENCE_IMAGES),
        "fast per-image (shipped)": (FAST_CONFIG, "per-image", None),
        "fast per-image + bf16 autocast": (replace(FAST_CONFIG, bf16=True), "per-image", None),
        "joint (shipped)": (JOINT_CONFIG, "joint", None),
    }
    results: dict[str, dict] = {}
    errs_by = {name: [] for name in configs}
    time_by = {name: 0.0 for name in configs}
    n_by = {name: 0 for name in configs}
    default_errs = []
    for si, (tile, st) in enumerate(stacks):
        valid = torch.ones_like(st.lr, dtype=torch.bool)
        default_errs += [kernel_errors(default_psf(3), k, 3) for k in st.kernels]
        for name, (cfg, mode, limit) in configs.items():
            n = limit or st.lr.shape[0]
            res = estimate_kernels(st.lr[:n], valid[:n], flow, 3, mode, cfg, seed=si)
            errs = [kernel_errors(res.kernels[t], st.kernels[t], 3) for t in range(n)]
            errs_by[name] += errs
            time_by[name] += res.seconds
            n_by[name] += n
            print(f"{tile} {name}: nl2 {statistics.mean(e['nl2'] for e in errs):.3f}, {res.seconds / n:.1f} s/image", flush=True)
    for name in configs:
        results[name] = summarize(errs_by[name], time_by[name], n_by[name])
    results["default isotropic PSF (no estimation)"] = summarize(default_errs, 0.0, len(default_errs))
    ref = results["reference DIP-FKP (5x128, 1000 it, 24 px crop)"]
    table = ["| configuration | kernel nL2 | sigma error (px) | angle error (deg) | s / image | speed-up vs reference |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        speed = f"{ref['s_per_image'] / r['s_per_image']:.1f}x" if r["s_per_image"] > 0 else "-"
        table.append(f"| {name} | {r['nl2']:.3f} | {r['sigma_abs']:.3f} | {r['angle_deg']:.1f} | "
                     f"{r['s_per_image']:.1f} | {speed} |")
    return {"rows": [{"configuration": n, **r} for n, r in results.items()], "table": table,
            "setting": {"tile_hr": TILE, "scale": 3, "stacks": len(stacks)}}
