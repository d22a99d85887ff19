"""Whole-raster PIUNet inference on the CPU: today's settings against earlier defaults, in one run.

A 1024 x 1024 x 9 stack cut from the real Landsat 8 pan band (date t moved by (t // 3, t % 3) px), the shipped
base model, fp32, :func:`inference.predict` as the job runs it (the raster's context from its crops, then tiles
with their halo). Each configuration runs in a fresh process, one after the other (a process's allocator state
is what is being compared, and two torch jobs at once would thrash the 2 cores):

- issue 16's reference, "today's default" when the issue was filed: the code of commit REFERENCE_COMMIT
  (extracted with ``git archive`` into a temporary folder), fp32, 256-px tiles; run first and last;
- the previous default (commit PREVIOUS_COMMIT: heap reuse, chunked attention, 224-px tiles);
- today's code at its default tile size (twice) and at 256 px (every job runs inside :func:`heap.heap_reuse`).

Reported: seconds, us per LR pixel, peak resident memory, and the largest difference from the reference and
the PSNR against it (peak: its range).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import L8_PAN, ROOT, save

N = 1024
REFERENCE_COMMIT = "73c21d5"  # the code when issue 16's work began (contiguous weights, no heap reuse)
PREVIOUS_COMMIT = "e6ece3e"  # the fifth session's default: heap reuse, chunked attention, 224-px tiles
CONFIGS = [  # (name, code: a commit or "today", tile, heap reuse)
    ("issue 16's reference (73c21d5), tile 256", REFERENCE_COMMIT, 256, False),
    ("previous default (e6ece3e): heap reuse, chunked attention, tile 224", PREVIOUS_COMMIT, 224, True),
    ("today's default: folded attention, trimmed halo, tile 224", "today", 224, True),
    ("today's code, tile 256", "today", 256, True),
    ("today's default again", "today", 224, True),
    ("issue 16's reference again", REFERENCE_COMMIT, 256, False),
]


def child(code: str, tile: int, heap: bool, out: str) -> None:
    import contextlib

    for name in [m for m in sys.modules if m.split(".")[0] == "stacksr"]:  # common imported today's code
        del sys.modules[name]
    sys.path.insert(0, code)

    import torch

    from stacksr.core.learned import inference
    from stacksr.core.learned.model_files import load_model
    from stacksr.core.io.whole_reads import read_raster

    arr, _, _, _ = read_raster(L8_PAN)
    frames = torch.stack([torch.from_numpy(arr[8 + t // 3:8 + t // 3 + N, 8 + t % 3:8 + t % 3 + N].astype(np.float32))
                          for t in range(9)])
    valid = torch.ones_like(frames, dtype=torch.bool)
    net, _ = load_model(os.path.join(ROOT, "models", "piunet_base_x3.pt"), scale=3)
    if heap:
        from stacksr.core.heap import heap_reuse
    with heap_reuse() if heap else contextlib.nullcontext():
        inference.predict(net, frames[:, :64, :64], valid[:, :64, :64])  # warm-up
        t = time.perf_counter()
        sr = inference.predict(net, frames, valid, tile=tile)[0]
        dt = time.perf_counter() - t
    np.save(out, sr.numpy())
    print(json.dumps({"code": inference.__file__, "seconds": dt, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      "threads": torch.get_num_threads()}))


def main() -> None:
    rows, ref = [], None
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"today": os.path.join(ROOT, ".build", "pkg")}
        for commit in {c for _, c, _, _ in CONFIGS} - {"today"}:
            code = os.path.join(tmp, commit)
            os.makedirs(os.path.join(code, "pkg"))
            archive = subprocess.run(["git", "-C", ROOT, "archive", commit], capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", code], input=archive, check=True)
            os.symlink(code, os.path.join(code, "pkg", "stacksr"))
            paths[commit] = os.path.join(code, "pkg")
        for i, (name, version, tile, heap) in enumerate(CONFIGS):
            out = os.path.join(tmp, f"{i}.npy")
            res = subprocess.run([sys.executable, __file__, "--child", paths[version], str(tile), str(int(heap)), out],
                                 capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            sr = np.load(out)
            ref = sr if ref is None else ref
            rows.append({"run": name, "commit": version, "tile": tile, "seconds": round(r["seconds"], 1),
                         "us_per_lr_px": round(r["seconds"] / N ** 2 * 1e6, 1), "peak_rss_gb": round(r["peak_rss_gb"], 2),
                         "threads": r["threads"], "max_abs_diff_vs_reference_dn": float(np.abs(sr - ref).max()),
                         "psnr_vs_reference_db": None if np.array_equal(sr, ref) else  # peak: the reference's range
                         round(float(10 * np.log10(np.ptp(ref) ** 2 / np.mean((sr - ref) ** 2))), 1)})
            rows[-1]["speedup_vs_first_reference"] = round(rows[0]["seconds"] / r["seconds"], 2)
            print(rows[-1], flush=True)
    save("inference_speed", {"size": N, "frames": 9, "rows": rows})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), bool(int(sys.argv[4])), sys.argv[5])
    else:
        main()
