"""IBP at scale: time per input pixel and peak memory of ``sr --method ibp`` against ``sr --method piunet`` (the shipped
base model) and ``sr --method auto`` (what validating the methods costs against the one it chooses), all with the
CLI's defaults, on 9-date stacks of 512^2 and 2048^2 px at x3 (issue 30, item 5).

The dates are VRT mosaics of the real Landsat 8 pan band, date t moved by (t // 3 / 3, t % 3 / 3) px with GDAL's cubic
resampling (:func:`bench_streaming.build_dates`), so registration finds sub-pixel shifts as on real dates. Each job
runs alone under /usr/bin/time (peak resident memory). Time per input pixel: the job's wall time over the raster's
pixels (one date's). Also, in the same run, one tile's IBP (the job's tile and halo: 294 x 294 LR px, 9 dates, 60
iterations) against a plain reference implementation of the same operator (shift T HR copies, blur, decimate; the
adjoint by autograd), with the largest difference of their outputs.
The harness's ``speed`` and ``memory`` suites: ``python benchmarks/run.py --suites speed,memory --sizes 512 2048``.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import torch
import torch.nn.functional as F
from osgeo import gdal

from bench_streaming import build_dates, run
from stacksr.core.classic.baselines import default_psf, ibp, mean_bicubic
from stacksr.core.degradation.operators import blur_downsample, shift_images
from stacksr.core.classic.shift_blur import margin_px


def reference_ibp(frames, valid, scale, shifts, kernel, iterations):
    """IBP as it was written before the operator became convolutions: the same update, margin and step floor."""
    T = frames.shape[0]
    kernels = kernel[None].expand(T, -1, -1)
    d = shifts * scale
    margin = margin_px(kernel.shape[-1], d, scale)
    M = margin * scale

    def forward(x, mode="bicubic"):
        return blur_downsample(shift_images(x.expand(T, -1, -1), d, mode), kernels, scale)

    def adjoint(x, v, mode="bicubic"):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            return torch.autograd.grad(forward(xr, mode), xr, grad_outputs=v)[0]

    m = F.pad(valid.float(), (margin,) * 4)
    y = F.pad(frames, (margin,) * 4)
    x = F.pad(mean_bicubic(frames, valid, scale, shifts)[None], (M,) * 4, mode="replicate")[0]
    norm = torch.maximum(adjoint(x, m), adjoint(x, m, "bicubic-magnitude") / 1.3).clamp(min=1e-3)
    for _ in range(iterations):
        x = x + adjoint(x, m * (y - forward(x))) / norm
    return x[M:-M, M:-M]


def tile_comparison(dates: list[str], size: int = 294, iterations: int = 60) -> dict:
    frames = torch.stack([torch.from_numpy(gdal.Open(p).ReadAsArray(0, 0, size, size).astype("float32")) for p in dates])
    valid = torch.ones_like(frames, dtype=torch.bool)
    shifts = torch.tensor([[-(t // 3) / 3, -(t % 3) / 3] for t in range(len(dates))])
    psf = default_psf(3)
    out = {}
    for name, fn in (("reference", reference_ibp), ("shipped", None)):
        t0 = time.perf_counter()
        res = fn(frames, valid, 3, shifts, psf, iterations) if fn else ibp(frames, valid, 3, shifts, psf, iterations)
        out[name] = (time.perf_counter() - t0, res)
    return {"tile_input_px": size, "iterations": iterations, "reference_s": round(out["reference"][0], 2),
            "shipped_s": round(out["shipped"][0], 2), "speedup": round(out["reference"][0] / out["shipped"][0], 1),
            "largest_difference_dn": float((out["reference"][1] - out["shipped"][1]).abs().max()),
            "value_range_dn": float(frames.max() - frames.min())}


def seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def suite(names: list[str], opts) -> dict:
    """The harness's ``speed`` and ``memory`` suites (``benchmarks/run.py``; one set of runs measures both):
    IBP and PIUNet as the CLI runs them on 9-date stacks of ``opts.sizes`` px, and one tile of IBP against its
    plain reference implementation."""
    sizes, methods = opts.sizes, ["ibp", "piunet", "auto"]
    work = tempfile.mkdtemp(prefix="stacksr_ibp_scale_")
    rows = []
    tile = tile_comparison(build_dates(work, 512, subpixel=True))
    print(json.dumps(tile), flush=True)
    for size in sizes:
        dates = build_dates(work, size, subpixel=True)
        for method in methods:
            out = run(["sr", "--inputs", *dates, "--method", method, "--output", os.path.join(work, f"{method}{size}.tif")])
            s = seconds(out["wall_clock"])
            rows.append({"method": method, "size": size, "seconds": s, "us_per_input_px": round(s / size ** 2 * 1e6, 1),
                         "peak_rss_gb": out["peak_rss_gb"],
                         "method_used": out["summary"].get("method")})
            print(json.dumps(rows[-1]), flush=True)
    by = {(r["method"], r["size"]): r for r in rows}
    table = ["| method | stack (9 dates, x3) | seconds | us per input px | peak memory (GB) |", "|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['size']}^2 | {r['seconds']:.1f} | {r['us_per_input_px']} | {r['peak_rss_gb']} |"
              for r in rows]
    table.append("")
    for m in methods:
        if len(sizes) > 1:
            table.append(f"- {m} peak memory {max(sizes)}^2 / {min(sizes)}^2: "
                         f"{by[m, max(sizes)]['peak_rss_gb'] / by[m, min(sizes)]['peak_rss_gb']:.2f}")
    for size in sizes:
        table.append(f"- IBP / PIUNet time per input px at {size}^2: "
                     f"{by['ibp', size]['us_per_input_px'] / by['piunet', size]['us_per_input_px']:.2f}")
        used = by["auto", size]["method_used"]
        if (used, size) in by:
            table.append(f"- auto (chose {used}) / {used} alone, time at {size}^2: "
                         f"{by['auto', size]['seconds'] / by[used, size]['seconds']:.2f}")
    table.append(f"- one tile of IBP ({tile['tile_input_px']} px, {tile['iterations']} iterations): plain reference "
                 f"{tile['reference_s']} s, shipped {tile['shipped_s']} s ({tile['speedup']} x); largest difference "
                 f"{tile['largest_difference_dn']:.3g} DN of {tile['value_range_dn']:.0f}")
    return {"rows": rows, "tile": tile, "table": table}
