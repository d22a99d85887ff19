"""Whole-raster PIUNet inference on the CPU: memory layout of the weights and tile size, in one run.

A 384 x 384 x 9 stack cut from the real Landsat 8 pan band (date t moved by (t // 3, t % 3) px), the shipped
base model, fp32, :func:`inference.predict` (tiles with their halo, as the job runs them). The reference is the
previous default, contiguous weights (``inference.WEIGHT_LAYOUT``); each row is timed once after a warm-up, the
reference twice. Nothing else may run meanwhile (2 cores).
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from common import L8_PAN, ROOT, save
from stacksr.core.learned import inference
from stacksr.core.learned.model_files import load_model
from stacksr.core.io.whole_reads import read_raster

N = 384


def main() -> None:
    arr, _, _, _ = read_raster(L8_PAN)
    frames = torch.stack([torch.from_numpy(arr[8 + t // 3:8 + t // 3 + N, 8 + t % 3:8 + t % 3 + N].astype(np.float32))
                          for t in range(9)])
    valid = torch.ones_like(frames, dtype=torch.bool)
    net, _ = load_model(os.path.join(ROOT, "models", "piunet_base_x3.pt"), scale=3)
    inference.predict(net, frames[:, :64, :64], valid[:, :64, :64])  # warm-up
    rows, ref = [], None
    for name, tile, layout in [("contiguous weights, tile 256 (previous default)", 256, torch.contiguous_format),
                               ("channels-last weights, tile 256 (default)", 256, torch.channels_last),
                               ("channels-last weights, tile 128", 128, torch.channels_last),
                               ("contiguous weights, tile 256 (again)", 256, torch.contiguous_format),
                               ("channels-last weights, tile 256 (again)", 256, torch.channels_last)]:
        inference.WEIGHT_LAYOUT = layout
        t = time.perf_counter()
        out = inference.predict(net, frames, valid, tile=tile)[0]
        dt = time.perf_counter() - t
        ref = out if ref is None else ref
        rows.append({"run": name, "seconds": round(dt, 2), "us_per_input_px": round(dt / N ** 2 * 1e6, 1),
                     "max_abs_diff_vs_reference_dn": float((out - ref).abs().max())})
        print(rows[-1], flush=True)
    inference.WEIGHT_LAYOUT = torch.channels_last
    save("inference_layout", {"threads": torch.get_num_threads(), "size": N, "rows": rows})


if __name__ == "__main__":
    main()
