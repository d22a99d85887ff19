"""Estimated kernels on both kinds of stack: their error against the true kernels, and IBP with them.

What a user gets: `estimate_kernels(..., "joint")` with its defaults on every date of a stack (the
kernel job), then super-resolution on the frames the job keeps (registration quality), IBP with the
default PSF, with the estimated bank, and with the true kernels (oracle), at 40 iterations and with the
count chosen by held-out validation (the job's default). Kernel error: normalised L2
against the true kernels, on every frame and on the kept frames; the raw flow output (before
calibration) and the default PSF for comparison.

    cd benchmarks && ../.venv/bin/python bench_ibp_kernels.py [--bench static|realdates|both]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import DATA_RANGE, S2_DATA_RANGE, l8_stacks, s2_stacks, save
from stacksr.core.classic.baselines import choose_ibp_iterations, default_psf, ibp, mean_bicubic
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.estimation.kernel_estimation import estimate_kernels
from stacksr.core.degradation.kernels import kernel_errors
from stacksr.core.metrics import cpsnr
from stacksr.core.params import REGISTRATION_QUALITY
from stacksr.core.classic.registration import register_stack


def load(bench: str):
    if bench == "static":
        return [(n, st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool), st.kernels) for n, st in l8_stacks(399)], DATA_RANGE
    return [(n, st.hr, st.lr, st.valid, st.kernels) for n, st in s2_stacks()], S2_DATA_RANGE


def run(bench: str) -> dict:
    flow = load_fkp(default_fkp_path(3), 3)
    stacks, data_range = load(bench)
    nl2 = {f"{k} ({w})": [] for k in ("estimated", "raw flow output", "default PSF") for w in ("every frame", "kept frames")}
    scores = {m: [] for m in ("mean-bicubic", "IBP (default PSF)", "IBP (estimated kernels)", "IBP (true kernels)",
                              "IBP (default PSF, iterations chosen)", "IBP (estimated kernels, iterations chosen)")}
    seconds, prior_only = [], 0
    for name, hr, lr, valid, true in stacks:
        t0 = time.perf_counter()
        est = estimate_kernels(lr, valid, flow, 3, "joint", seed=0)
        seconds.append(time.perf_counter() - t0)
        prior_only += int((~est.estimated).sum())
        reg = register_stack(lr, valid, 0)
        used = reg.kept(REGISTRATION_QUALITY.default)
        used[0] = True
        for t in range(len(lr)):
            errs = {"estimated": kernel_errors(est.kernels[t], true[t], 3)["nl2"],
                    "raw flow output": kernel_errors(est.raw_kernels[t], true[t], 3)["nl2"],
                    "default PSF": kernel_errors(default_psf(3), true[t], 3)["nl2"]}
            for k, e in errs.items():
                nl2[f"{k} (every frame)"].append(e)
                if used[t]:
                    nl2[f"{k} (kept frames)"].append(e)
        f, v, s = lr[used], valid[used], reg.shifts[used]
        outs = {"mean-bicubic": mean_bicubic(f, v, 3, s), "IBP (default PSF)": ibp(f, v, 3, s),
                "IBP (estimated kernels)": ibp(f, v, 3, s, est.kernels[used]),
                "IBP (true kernels)": ibp(f, v, 3, s, true[used])}
        # what the job does by default: the iteration count chosen by held-out validation
        for label, k in (("default PSF", None), ("estimated kernels", est.kernels[used])):
            outs[f"IBP ({label}, iterations chosen)"] = ibp(f, v, 3, s, k, iterations=choose_ibp_iterations(f, v, 3, s, k)[0])
        for m, sr in outs.items():
            scores[m].append(cpsnr(sr.numpy(), hr.numpy(), max_shift=3, data_range=data_range).cpsnr)
        print(bench, name, int(used.sum()), f"{seconds[-1]:.0f} s",
              " ".join(f"{m} {v[-1]:.2f}" for m, v in scores.items()), flush=True)
    return {"kernel_nl2": {k: statistics.mean(v) for k, v in nl2.items()},
            "cpsnr": {m: statistics.mean(v) for m, v in scores.items()},
            "cpsnr_per_stack": scores, "kernel_nl2_per_frame": nl2, "stacks": [n for n, *_ in stacks],
            "estimation_seconds_per_stack": statistics.mean(seconds), "default_psf_frames": prior_only}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", choices=["static", "realdates", "both"], default="both")
    args = ap.parse_args()
    out = {b: run(b) for b in (["static", "realdates"] if args.bench == "both" else [args.bench])}
    for b, r in out.items():
        print(b, {k: round(v, 3) for k, v in r["kernel_nl2"].items()}, {k: round(v, 2) for k, v in r["cpsnr"].items()})
    save("ibp_kernels", out)


if __name__ == "__main__":
    main()
