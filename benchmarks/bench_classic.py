"""Classic baselines on real Landsat 8 pan stacks (x3, T=9, known kernels and shifts): the harness's ``classic``
suite (``benchmarks/run.py --suites classic``).

Methods: mean of bicubic without and with registration, IBP with the default
isotropic PSF (what a user gets), and IBP with the true kernels and shifts (oracle).
"""
from __future__ import annotations

import statistics
import time

import torch

from common import DATA_RANGE, l8_stacks
from stacksr.core.classic.baselines import choose_ibp_iterations, ibp, mean_bicubic
from stacksr.core.metrics import cpsnr, ssim
from stacksr.core.classic.registration import register_frames

TILE = 399  # HR pixels (LR 133 x 133); the 1254 x 1207 pan gives 9 tiles


def suite(names: list[str], opts) -> dict:
    """The harness's ``classic`` suite (``benchmarks/run.py``)."""
    stacks = l8_stacks(TILE)
    rows: dict[str, dict[str, list[float]]] = {}

    def record(method: str, hr_est: torch.Tensor, stack, seconds: float) -> None:
        r = rows.setdefault(method, {"cpsnr": [], "ssim": [], "seconds": []})
        r["cpsnr"].append(cpsnr(hr_est.numpy(), stack.hr.numpy(), max_shift=3, data_range=DATA_RANGE).cpsnr)
        r["ssim"].append(ssim(hr_est.numpy(), stack.hr.numpy(), data_range=DATA_RANGE))
        r["seconds"].append(seconds)

    for name, st in stacks:
        valid = torch.ones_like(st.lr, dtype=torch.bool)
        t = time.perf_counter()
        shifts = register_frames(st.lr, valid, 0)
        t_reg = time.perf_counter() - t
        reg_err = float((shifts - st.shifts).abs().max())
        for method, fn, extra in [
            ("mean-bicubic (no registration)", lambda: mean_bicubic(st.lr, valid, 3, None), 0.0),
            ("mean-bicubic (registered)", lambda: mean_bicubic(st.lr, valid, 3, shifts), t_reg),
            ("IBP (registered, default PSF, 40 iterations)", lambda: ibp(st.lr, valid, 3, shifts), t_reg),
            ("IBP (registered, default PSF, iterations chosen: the default)",
             lambda: ibp(st.lr, valid, 3, shifts, iterations=choose_ibp_iterations(st.lr, valid, 3, shifts)[0]), t_reg),
            ("IBP (oracle shifts and kernels)", lambda: ibp(st.lr, valid, 3, st.shifts, st.kernels), 0.0),
        ]:
            t = time.perf_counter()
            out = fn()
            record(method, out, st, time.perf_counter() - t + extra)
        print(f"{name}: registration max error {reg_err:.3f} LR px; " + ", ".join(
            f"{m}: {v['cpsnr'][-1]:.2f}" for m, v in rows.items()), flush=True)

    summary = {m: {k: statistics.mean(v) for k, v in d.items()} for m, d in rows.items()}
    base = summary["mean-bicubic (registered)"]
    table = ["| method | cPSNR (dB) | SSIM | s / stack | cPSNR vs registered mean-bicubic |", "|---|---|---|---|---|"]
    for m, s in summary.items():
        table.append(f"| {m} | {s['cpsnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.2f} | "
                     f"{s['cpsnr'] - base['cpsnr']:+.2f} dB |")
    return {"rows": [{"method": m, **s} for m, s in summary.items()], "per_stack": rows, "table": table,
            "setting": {"tile_hr": TILE, "frames": 9, "scale": 3, "stacks": len(stacks)}}
