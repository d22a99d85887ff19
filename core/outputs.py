"""Writing results: output paths checked before any work, and GeoTIFFs.

Every StackSR output goes through :func:`atomic_files.atomic_output`, so an error or a cancel never leaves a
partial file behind and a previous output stays intact until the new one is complete.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

import numpy as np
from osgeo import gdal

from .atomic_files import atomic_output
from .stack_io import RasterGrid, RasterStack, StackError


RASTER_EXTENSIONS = (".tif", ".tiff")  # every raster StackSR writes is a GeoTIFF


def output_nodata(stack: RasterStack) -> float:
    """Nodata value of the outputs: the input's, or NaN when it has none."""
    return float(stack.nodata) if stack.nodata is not None else float("nan")


def output_dtype(nodata: float | None) -> type:
    """float32, unless float32 cannot hold the nodata value exactly (a float64 input's -1e300
    would become -inf): then float64, so the input's nodata is kept as promised."""
    if nodata is None or not np.isfinite(nodata):
        return np.float32
    with np.errstate(over="ignore"):
        return np.float32 if float(np.float32(nodata)) == float(nodata) else np.float64


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_path(path: str, inputs: Iterable[str], extensions: Sequence[str] | None = None) -> None:
    """Before any work: refuse to overwrite an input, a folder in the file's place, an extension
    other than ``extensions`` (e.g. :data:`RASTER_EXTENSIONS`; a .png would get GeoTIFF bytes) and an
    unwritable or missing folder."""
    if not path:
        raise StackError("no output file given")
    if extensions and os.path.splitext(path)[1].lower() not in extensions:
        raise StackError(f"the output '{path}' must end in {' or '.join(extensions)} (StackSR writes GeoTIFF rasters)")
    if os.path.isdir(path):
        raise StackError(f"the output '{path}' is a folder; give a file name")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise StackError(f"the output '{path}' exists and is not a regular file, so it cannot be replaced")
    for p in inputs:
        if p and (same_file(path, p) or os.path.abspath(path) == os.path.abspath(p)):
            raise StackError(f"the output '{path}' is one of the inputs; choose another file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StackError(f"output folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK):
        raise StackError(f"output folder '{folder}' is not writable")


def write_geotiff(
    path: str,
    array: np.ndarray,
    grid: RasterGrid,
    nodata: float | None = None,
    tags: dict | None = None,
    band_names: Sequence[str] | None = None,
) -> str:
    """Write a tiled, compressed GeoTIFF atomically (temp file, then rename): float32, or float64
    where :func:`output_dtype` says the nodata value needs it.

    ``array``: ``(H, W)`` or ``(B, H, W)``; must match ``grid``. ``tags`` are stored
    as GDAL metadata items (non-string values as JSON).
    """
    dtype = output_dtype(nodata)
    arr = np.asarray(array, dtype=dtype)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[1:] != (grid.height, grid.width):
        raise ValueError(f"array of shape {arr.shape[1:]} does not match the {grid.height}x{grid.width} grid")
    with atomic_output(path, ".tif") as tmp:
        drv = gdal.GetDriverByName("GTiff")
        opts = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER"]
        gdt = gdal.GDT_Float32 if dtype is np.float32 else gdal.GDT_Float64
        ds = drv.Create(tmp, grid.width, grid.height, arr.shape[0], gdt, opts)
        ds.SetGeoTransform(grid.geotransform)
        if grid.crs_wkt:
            ds.SetProjection(grid.crs_wkt)
        if tags:
            ds.SetMetadata({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()})
        for b in range(arr.shape[0]):
            band = ds.GetRasterBand(b + 1)
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
            if band_names:
                band.SetDescription(str(band_names[b]))
            band.WriteArray(arr[b])
            del band
        ds.FlushCache()
        ds = None
    return path
