"""Registration on stacks with real temporal change (Sentinel-2 NDVI, common.s2_stacks) and on the
static Landsat 8 stacks: error of the shifts of the frames the job keeps, and which frames it leaves out.

The real dates are not perfectly co-registered at 10 m (Sentinel-2 products of 2015-2017 predate the
multi-temporal refinement), so a frame's true shift is its synthetic shift plus the real offset of its
date: measured here by registering the cloud-free 10 m dates themselves (divided by 3; only where that
10 m registration is itself reliable, quality >= 0.95, is the truth called known).
"""
from __future__ import annotations

import os
import statistics

import numpy as np
import torch

from common import S2_DIR, l8_stacks, s2_dates, s2_stacks, save
from stacksr.core.params import REGISTRATION_QUALITY
from stacksr.core.classic.registration import register_stack

KNOWN = 0.95  # 10 m registration quality above which a date's real offset is trusted


def main() -> None:
    from osgeo import gdal

    ds = gdal.Open(os.path.join(S2_DIR, "ndvi_68dates.tif"))  # kept alive while read (GDAL 3.6)
    ndvi = torch.from_numpy(ds.ReadAsArray().astype(np.float32))
    ds = None
    ds = gdal.Open(os.path.join(S2_DIR, "cloudmask_68dates.tif"))
    clear = torch.from_numpy(ds.ReadAsArray() < 0.5)
    ds = None
    band = {d[1].strftime("%Y-%m-%d"): d[0] for d in s2_dates()}
    rows = []
    for name, st in s2_stacks():
        idx = [band[d] for d in st.dates]
        H, W = st.hr.shape
        hr_reg = register_stack(ndvi[idx, :H, :W], clear[idx, :H, :W], 0, bound=4)
        truth = st.shifts + hr_reg.shifts / st.scale
        reg = register_stack(st.lr, st.valid, 0)
        kept = reg.kept(REGISTRATION_QUALITY.default)
        for t in range(1, len(idx)):
            rows.append({"stack": name, "date": st.dates[t], "quality": float(reg.quality[t]), "kept": bool(kept[t]),
                         "truth_known": float(hr_reg.quality[t]) >= KNOWN,
                         "error": float((reg.shifts[t] - truth[t]).norm()),
                         "error_synthetic_only": float((reg.shifts[t] - st.shifts[t]).norm())})
        print(name, " ".join(f"{r['error']:.2f}{'*' if r['kept'] else ''}{'' if r['truth_known'] else '?'}"
                             for r in rows if r["stack"] == name), flush=True)
    kept_known = [r["error"] for r in rows if r["kept"] and r["truth_known"]]
    l8 = []
    for _, st in l8_stacks(399):
        reg = register_stack(st.lr, torch.ones_like(st.lr, dtype=torch.bool), 0)
        l8 += [float(e) for e in (reg.shifts - st.shifts).norm(dim=1)[1:]]
    summary = {
        "s2_frames": len(rows), "s2_kept": sum(r["kept"] for r in rows),
        "s2_kept_with_known_truth": len(kept_known),
        "s2_kept_error_max": max(kept_known), "s2_kept_error_mean": statistics.mean(kept_known),
        "s2_kept_over_0.1": sum(e > 0.1 for e in kept_known),
        "s2_all_error_mean": statistics.mean(r["error"] for r in rows),
        "l8_error_max": max(l8), "l8_error_mean": statistics.mean(l8)}
    print(summary)
    save("registration", {"summary": summary, "frames": rows, "min_quality": REGISTRATION_QUALITY.default,
                          "known_truth_quality": KNOWN})


if __name__ == "__main__":
    main()
