"""Memory of the streaming super-resolution job on large rasters built as VRTs (no extra disk).

Each of the 9 dates is a VRT mosaic of the real Landsat 8 pan band (1200 x 1200 px tiles repeated
to the size asked; date t reads the band moved by (t // 3, t % 3) px, so the frames register to
integer shifts). The CLI runs under /usr/bin/time, which reports the peak resident memory:

- ``sr --method ibp`` on 4000 x 4000 x 9 input px at x3 (``--iterations`` as given: the arrays, and so
  the memory, do not depend on the iteration count; the time does);
- ``sr --method piunet --uncertainty`` (the shipped base model) on 500 x 500 x 9 and 2000 x 2000 x 9.

Usage: ``python bench_streaming.py [--ibp-size 4000] [--ibp-iterations 40] [--piunet-sizes 500 2000] [--tile N]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

from osgeo import gdal

from common import L8_PAN, ROOT, save

TILE_SRC, ORIGIN = 1200, 8  # source tile of the pan band (and where it starts), repeated over the mosaic


def build_dates(folder: str, size: int, count: int = 9, subpixel: bool = False) -> list[str]:
    """``count`` VRTs of ``size`` x ``size`` px (see the module docstring); ``subpixel``: date t reads the band
    moved by (t // 3 / 3, t % 3 / 3) px instead, resampled by GDAL's cubic (sub-pixel shifts, as real dates have)."""
    src = gdal.Open(L8_PAN)
    gt, srs = src.GetGeoTransform(), src.GetProjection()
    band = src.GetRasterBand(1)
    dtype = gdal.GetDataTypeName(band.DataType)
    src = None
    paths = []
    for t in range(count):
        dy, dx = t // 3, t % 3
        if subpixel:
            dy, dx = dy / 3, dx / 3
        kind = 'SimpleSource resampling="cubic"' if subpixel else "SimpleSource"
        parts = []
        for r in range(0, size, TILE_SRC):
            for c in range(0, size, TILE_SRC):
                h, w = min(TILE_SRC, size - r), min(TILE_SRC, size - c)
                parts.append(f'<{kind}><SourceFilename relativeToVRT="0">{L8_PAN}</SourceFilename>'
                             f'<SourceBand>1</SourceBand><SrcRect xOff="{ORIGIN + dx}" yOff="{ORIGIN + dy}" xSize="{w}" '
                             f'ySize="{h}"/><DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/></SimpleSource>')
        xml = (f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{srs.replace("<", "&lt;")}</SRS>'
               f'<GeoTransform>{", ".join(repr(v) for v in gt)}</GeoTransform>'
               f'<VRTRasterBand dataType="{dtype}" band="1">{"".join(parts)}</VRTRasterBand></VRTDataset>')
        path = os.path.join(folder, f"date{t}_{size}{'_sub' if subpixel else ''}.vrt")
        with open(path, "w") as f:
            f.write(xml)
        paths.append(path)
    return paths


def run(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"))
    res = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "stacksr", "--quiet", *args],
                         capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", res.stderr).group(1)
    return {"peak_rss_gb": round(peak_kb / 1024 ** 2, 3), "wall_clock": wall,
            "summary": json.loads(res.stdout.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ibp-size", type=int, default=4000)
    ap.add_argument("--ibp-iterations", type=int, default=40)
    ap.add_argument("--piunet-sizes", type=int, nargs="*", default=[500, 2000])
    ap.add_argument("--tile", type=int, default=None, help="the jobs' tile size (default: theirs)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="stacksr_stream_")
    rows = []
    tile = ["--tile", str(args.tile)] if args.tile else []
    if args.ibp_size:
        dates = build_dates(work, args.ibp_size)
        out = run(["sr", "--inputs", *dates, "--method", "ibp", "--iterations", str(args.ibp_iterations),
                   "--output", os.path.join(work, "ibp.tif"), *tile])
        rows.append({"method": "ibp", "size": args.ibp_size, "iterations": args.ibp_iterations, **out})
        print(json.dumps(rows[-1]), flush=True)
    for size in args.piunet_sizes:
        dates = build_dates(work, size)
        out = run(["sr", "--inputs", *dates, "--method", "piunet", "--output", os.path.join(work, f"piunet{size}.tif"),
                   "--uncertainty", os.path.join(work, f"std{size}.tif"), *tile])
        rows.append({"method": "piunet", "size": size, "tile": args.tile, **out})
        print(json.dumps(rows[-1]), flush=True)
    save("streaming_memory", {"rows": rows})


if __name__ == "__main__":
    main()
