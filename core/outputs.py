"""Writing results: output paths checked before any work, atomic writes that follow the umask, GeoTIFFs.

Every StackSR output goes through :func:`atomic_output`, so an error or a cancel never leaves a
partial file behind and a previous output stays intact until the new one is complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Iterable, Iterator, Sequence

import numpy as np
from osgeo import gdal

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


def _umask() -> int:
    """The process umask, read without changing it where the system says it (Linux), since
    setting it to read it back races with other threads creating files (QGIS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Every StackSR output goes through here, so an error or a cancel never leaves a
    partial file behind, and a previous output stays intact until the new one is complete.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".stacksr-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); a result must be as readable as any file the
        # user creates, i.e. follow the process umask
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise StackError(f"cannot write the output '{path}': {exc.strerror}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | None], suffix: str = "") -> Iterator[list[str | None]]:
    """:func:`atomic_output` for several files that belong together (None entries are skipped):
    all are renamed into place only when the whole block succeeds, so a failure while writing
    the last leaves none of them (and the previous ones intact)."""
    with contextlib.ExitStack() as stack:
        yield [None if p is None else stack.enter_context(atomic_output(p, suffix)) for p in paths]


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
