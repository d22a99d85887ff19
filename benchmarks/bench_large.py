"""Large raster: a 9-date stack of 1207 x 1254 LR px super-resolved x3 in tiles.

Frames are the real Landsat 8 pan band with random sub-pixel shifts and noise (each date a
different shift), written as a 9-band GeoTIFF. The CLI runs PIUNet (the published 42/16
configuration; weights do not change time or memory) with 256-px tiles (each computed
with a halo of the network's receptive radius) under /usr/bin/time, which reports the
peak resident memory. Seams (:func:`seam_ratios`): the mean absolute gradient across the
tile boundaries vs across all column (row) boundaries of the same phase modulo the scale
(1.0: no seam; an HR pixel pair that straddles an LR pixel edge differs from one inside).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from osgeo import gdal

from common import L8_PAN, ROOT, save
from stacksr.core.degradation.operators import add_noise, shift_images
from stacksr.core.learned.piunet import PIUNet, PIUNetConfig
from stacksr.core.learned.model_files import save_model
from stacksr.core.learned.training import TrainConfig, TrainState

TILE, SCALE = 256, 3


def seam_ratios(sr: np.ndarray, tile: int, scale: int) -> dict:
    """Gradient across tile edges / gradient across same-phase pixel edges, per axis."""
    out = {}
    for axis, name in ((1, "columns"), (0, "rows")):
        grad = np.abs(np.diff(sr, axis=axis)).mean(axis=1 - axis)
        edges = list(range(tile * scale - 1, grad.shape[0], tile * scale))  # diff i: between pixels i and i+1
        same_phase = grad[(tile * scale - 1) % scale::scale]
        out[name] = float(grad[edges].mean() / same_phase.mean())
    return out


def main() -> None:
    work = tempfile.mkdtemp(prefix="stacksr_large_")
    src = gdal.Open(L8_PAN)
    pan = torch.from_numpy(src.ReadAsArray().astype(np.float32))
    g = torch.Generator().manual_seed(0)
    shifts = torch.rand(9, 2, generator=g) * 2 - 1
    frames = add_noise(shift_images(pan.expand(9, -1, -1), shifts), 20.0, g).numpy()
    stack_path = os.path.join(work, "stack.tif")
    ds = gdal.GetDriverByName("GTiff").Create(stack_path, pan.shape[1], pan.shape[0], 9, gdal.GDT_Float32, ["TILED=YES"])
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for b in range(9):
        ds.GetRasterBand(b + 1).WriteArray(frames[b])
    ds = None
    src = None
    model = os.path.join(work, "model.pt")
    torch.manual_seed(0)
    save_model(model, PIUNet(PIUNetConfig(scale=SCALE)), TrainConfig(scale=SCALE), "bench", TrainState())
    out = os.path.join(work, "sr.tif")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "stacksr", "--quiet", "sr", "--multiband", stack_path,
           "--method", "piunet", "--model", model, "--tile", str(TILE), "--scale", str(SCALE), "--output", out]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", res.stderr).group(1)
    ds = gdal.Open(out)
    sr = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
    size = (ds.RasterXSize, ds.RasterYSize)
    ds = None
    seams = seam_ratios(sr, TILE, SCALE)
    halo = PIUNet(PIUNetConfig(scale=SCALE)).receptive_radius()
    summary = {"lr_size": list(pan.shape[::-1]), "sr_size": size, "tile": TILE, "halo": halo,
               "peak_rss_gb": peak_kb / 1024 ** 2, "wall_clock": wall, "seam_gradient_ratio": seams,
               "summary": json.loads(res.stdout.strip().splitlines()[-1])}
    print(json.dumps(summary, indent=2))
    save("large_raster", summary)


if __name__ == "__main__":
    main()
