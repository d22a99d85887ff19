"""Writing results: output paths checked before any work, and GeoTIFFs.

Every StackSR output goes through :func:`atomic_files.atomic_output`, so an error or a cancel never leaves a
partial file behind and a previous output stays intact until the new one is complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Iterable, Sequence

import numpy as np
from osgeo import gdal

from .atomic_files import atomic_output
from .stack_io import RasterGrid, StackError, StackReader
from .whole_reads import RasterStack


RASTER_EXTENSIONS = (".tif", ".tiff")  # every raster StackSR writes is a GeoTIFF


def output_nodata(stack: "RasterStack | StackReader") -> float:
    """Nodata value of the outputs: the input's (a stack read or opened), or NaN when it has none."""
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


def _same_target(a: str, b: str) -> bool:
    """Whether writing ``a`` would write ``b``: the same path, the same file through a symbolic link (resolved,
    existing or not) or a hard link."""
    return os.path.abspath(a) == os.path.abspath(b) or os.path.realpath(a) == os.path.realpath(b) or same_file(a, b)


def plan_outputs(outputs: Sequence[tuple[str, str | None, Sequence[str] | None]], inputs: Iterable[str]) -> None:
    """Before any work, every file a job will write, as ``(what, path, extensions)`` (None paths are not written;
    derived files such as a model's ``.last`` checkpoint are listed by the job): each passes
    :func:`check_output_path`, and no two are the same file (one would destroy the other: a report written over
    the model, exit 0). The one place the CLI, QGIS and the chain refuse colliding outputs."""
    inputs = [p for p in inputs if p]
    given = [(what, path, ext) for what, path, ext in outputs if path]
    for what, path, ext in given:
        check_output_path(path, inputs, ext)
    for i, (what_a, a, _) in enumerate(given):
        for what_b, b, _ in given[i + 1:]:
            if _same_target(a, b):
                raise StackError(f"the {what_a} and the {what_b} would be the same file '{b}'; give each its own name")


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
        if p and _same_target(path, p):
            raise StackError(f"the output '{path}' is one of the inputs; choose another file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StackError(f"output folder '{folder}' does not exist")
    if not os.access(folder, os.W_OK):
        raise StackError(f"output folder '{folder}' is not writable")


def raster_bytes(width: int, height: int, bands: int = 1, nodata: float | None = None) -> int:
    """Uncompressed size of a raster StackSR writes: an upper bound of the file (DEFLATE with the float
    predictor shrank the demo's outputs by about 1.25 x only, so the bound is close)."""
    return int(width) * int(height) * int(bands) * np.dtype(output_dtype(nodata)).itemsize


def check_free_space(outputs: Sequence[tuple[str | None, int]]) -> None:
    """Before any work: refuse outputs ``(path, bytes)`` that cannot fit on their disks (summed per file
    system; a replaced output is kept until the new one is complete, so its space does not count as free)."""
    need: dict[int, list] = {}
    for path, nbytes in outputs:
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            need.setdefault(os.stat(folder).st_dev, [folder, 0])[1] += int(nbytes)
    for folder, nbytes in need.values():
        free = shutil.disk_usage(folder).free
        if nbytes > free:
            raise StackError(f"the outputs need up to {_size(nbytes)} and '{folder}' has {_size(free)} free; "
                             "free some space, write elsewhere or super-resolve a smaller area")


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""


FLUSH_BYTES = 16 << 20  # written bytes after which the blocks GDAL caches are written out and freed


@contextlib.contextmanager
def _writing(path: str):
    """GDAL's write errors (a full disk, a file-size limit, a lost network share) as one OSError naming the
    folder: they arrive as RuntimeError and ended the CLI with a traceback and exit 1."""
    try:
        yield
    except RuntimeError as exc:
        raise OSError(f"writing into '{os.path.dirname(os.path.abspath(path))}' failed ({exc}); is the disk full? "
                      "Nothing of this run was kept") from exc


class GeoTiffWriter:
    """A tiled, compressed float GeoTIFF written window by window (a result that never has to be whole
    in memory), at ``path`` as it is given (callers write into :func:`atomic_files.atomic_output`'s
    temporary file). float32, or float64 where :func:`output_dtype` says the nodata value needs it.
    ``tags`` are stored as GDAL metadata items (non-string values as JSON). Close it (or use it as a
    context manager) before the file is renamed or read."""

    def __init__(self, path: str, grid: RasterGrid, bands: int = 1, nodata: float | None = None,
                 tags: dict | None = None, band_names: Sequence[str] | None = None):
        self.dtype = output_dtype(nodata)
        self.grid, self.nodata, self._pending, self._path = grid, nodata, 0, path
        with _writing(path):
            self._create(path, grid, bands, nodata, tags, band_names)

    def _create(self, path, grid, bands, nodata, tags, band_names) -> None:
        drv = gdal.GetDriverByName("GTiff")
        opts = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER"]
        gdt = gdal.GDT_Float32 if self.dtype is np.float32 else gdal.GDT_Float64
        self._ds = drv.Create(path, grid.width, grid.height, bands, gdt, opts)
        self._ds.SetGeoTransform(grid.geotransform)
        if grid.crs_wkt:
            self._ds.SetProjection(grid.crs_wkt)
        if tags:
            self._ds.SetMetadata({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()})
        for b in range(bands):
            band = self._ds.GetRasterBand(b + 1)
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
            if band_names:
                band.SetDescription(str(band_names[b]))
            del band

    def write(self, rows: slice, cols: slice, array: np.ndarray, band: int = 1) -> None:
        """Write ``array`` ``(h, w)`` at the window ``rows`` x ``cols`` of the grid."""
        arr = np.asarray(array, dtype=self.dtype)
        if arr.shape != (rows.stop - rows.start, cols.stop - cols.start):
            raise ValueError(f"array of shape {arr.shape} does not match the window {rows}, {cols}")
        with _writing(self._path):
            b = self._ds.GetRasterBand(band)
            b.WriteArray(arr, xoff=cols.start, yoff=rows.start)
            del b
            self._pending += arr.nbytes
            if self._pending > FLUSH_BYTES:  # GDAL would keep written blocks up to its cache size (5 % of RAM)
                self._ds.FlushCache()
                self._pending = 0

    def close(self) -> None:
        if self._ds is not None:
            ds, self._ds = self._ds, None
            with _writing(self._path):
                ds.FlushCache()
                del ds

    def __enter__(self) -> "GeoTiffWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_geotiff(
    path: str,
    array: np.ndarray,
    grid: RasterGrid,
    nodata: float | None = None,
    tags: dict | None = None,
    band_names: Sequence[str] | None = None,
) -> str:
    """Write a whole array ``(H, W)`` or ``(B, H, W)`` (must match ``grid``) as a GeoTIFF, atomically
    (temporary file, then rename); see :class:`GeoTiffWriter`."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[1:] != (grid.height, grid.width):
        raise ValueError(f"array of shape {arr.shape[1:]} does not match the {grid.height}x{grid.width} grid")
    with atomic_output(path, ".tif") as tmp:
        with GeoTiffWriter(tmp, grid, arr.shape[0], nodata, tags, band_names) as w:
            for b in range(arr.shape[0]):
                w.write(slice(0, grid.height), slice(0, grid.width), arr[b], b + 1)
    return path
