"""Reading multitemporal raster stacks and writing georeferenced results (GDAL).

A stack is T single-band images on one grid: either T rasters, or bands of one
multiband raster. Each image gets a validity mask from its nodata value,
non-finite values and, optionally, a quality/cloud mask raster.

GDAL 3.6's Python bindings crash if a dataset is freed while one of its bands
is in use, so every band is read while its dataset variable is alive.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from osgeo import gdal, osr

from ..choices import FMASK_INVALID_VALUES  # noqa: F401 - the readers' default, where the jobs import it
from ..errors import StackError  # this module's error, defined GDAL-free (atomic_files raises it too)

gdal.UseExceptions()

_COMPLEX_TYPES = {gdal.GDT_CInt16, gdal.GDT_CInt32, gdal.GDT_CFloat32, gdal.GDT_CFloat64}
_GEO_TOL = 1e-6  # relative to the pixel size


@dataclass(frozen=True)
class ImageSource:
    """One image of a stack: a raster path and a 1-based band, plus an optional mask."""

    path: str
    band: int = 1
    mask_path: str | None = None
    mask_band: int = 1

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        return base if self.band == 1 else f"{base}:b{self.band}"


@dataclass
class RasterGrid:
    width: int
    height: int
    geotransform: tuple[float, ...]
    crs_wkt: str

    def scaled(self, scale: int) -> "RasterGrid":
        """The grid refined ``scale`` times: same origin, pixel size / scale."""
        g = self.geotransform
        return RasterGrid(self.width * scale, self.height * scale,
                          (g[0], g[1] / scale, g[2] / scale, g[3], g[4] / scale, g[5] / scale), self.crs_wkt)


# /vsizip/..., NETCDF:"f.nc":var, HDF5:..., GPKG:... (two letters at least: "C:" is a Windows drive)
GDAL_NAME = re.compile(r"^(/vsi[a-z0-9_]+/|[A-Za-z0-9_]{2,}:)")


def open_dataset(path: str, what: str) -> gdal.Dataset:
    """``path``: a file, or a name GDAL opens that is not a plain file (a /vsi path, a driver's subdataset name)."""
    if not path or not (os.path.exists(path) or GDAL_NAME.match(path)):
        raise StackError(f"{what} '{path}' does not exist")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise StackError(f"{what} '{path}' cannot be read as a raster: {str(exc).strip()}") from exc
    if ds is None:
        raise StackError(f"{what} '{path}' cannot be read as a raster")
    return ds


def georeferenced(ds: gdal.Dataset) -> bool:
    """Whether the raster says where it is (a geotransform or ground control points)."""
    return ds.GetGeoTransform(can_return_null=True) is not None or ds.GetGCPCount() > 0


def grid_of(ds: gdal.Dataset) -> RasterGrid:
    return RasterGrid(ds.RasterXSize, ds.RasterYSize, tuple(ds.GetGeoTransform()), ds.GetProjection() or "")


def _same_crs(a: str, b: str) -> bool:
    if not a and not b:
        return True
    if not a or not b:
        return False
    sa, sb = osr.SpatialReference(), osr.SpatialReference()
    sa.ImportFromWkt(a)
    sb.ImportFromWkt(b)
    return bool(sa.IsSame(sb))


def check_same_grid(grid: RasterGrid, ref: RasterGrid, name: str, ref_name: str) -> None:
    """Raise StackError naming ``name`` if its grid differs from ``ref``'s."""
    if (grid.width, grid.height) != (ref.width, ref.height):
        raise StackError(f"'{name}' is {grid.width}x{grid.height} pixels but '{ref_name}' is {ref.width}x{ref.height}")
    if not _same_crs(grid.crs_wkt, ref.crs_wkt):
        raise StackError(f"'{name}' has a different CRS from '{ref_name}'")
    tol = _GEO_TOL * max(abs(ref.geotransform[1]), abs(ref.geotransform[5]), 1e-12)
    g, r = np.array(grid.geotransform), np.array(ref.geotransform)
    if np.abs(g[[1, 2, 4, 5]] - r[[1, 2, 4, 5]]).max() > tol:
        raise StackError(f"'{name}' has pixel size {g[1]:g} x {g[5]:g} but '{ref_name}' has {r[1]:g} x {r[5]:g}")
    if np.abs(g[[0, 3]] - r[[0, 3]]).max() > tol:
        raise StackError(f"'{name}' has origin ({g[0]:.6f}, {g[3]:.6f}) but '{ref_name}' has ({r[0]:.6f}, {r[3]:.6f})")


def read_band(ds: gdal.Dataset, band: int, name: str) -> tuple[np.ndarray, float | None, int]:
    b = _band(ds, band, name)
    return _read_window(ds, band, name, 0, 0, ds.RasterXSize, ds.RasterYSize), b.GetNoDataValue(), b.DataType


IMPLAUSIBLE = 1e20  # no sensor records values this large in any unit; float32's lowest (-3.4e38) is a usual undeclared fill


def valid_pixels(a: np.ndarray, nodata: float | None) -> np.ndarray:
    ok = np.isfinite(a)
    if nodata is not None and np.isfinite(nodata):
        ok &= a != nodata
    if a.dtype.kind == "f":  # a couple of +-1e30 pixels put every PIUNet + TTF pixel above 1e5 and wrote +-inf
        ok &= np.abs(a) < IMPLAUSIBLE
    return ok


CACHE_RELEASE_BYTES = 64 << 20  # bytes read after which the blocks GDAL cached for the reader are freed


MASK_VALUES_SHOWN = 8  # values the masks hold, named in the warning when none of them marks anything


class StackReader:
    """A stack opened for reading window by window: the grids and bands are checked when it is
    opened, pixels are read only when asked for, so a job holds the windows it works on rather than
    the whole stack (memory does not grow with the area). Use as a context manager or :meth:`close`.

    The datasets stay open (and referenced) while the reader lives: GDAL 3.6 crashes when a band is
    used after its dataset was freed."""

    def __init__(self, sources: Sequence[ImageSource], invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
                 min_images: int = 2):
        if len(sources) < min_images:
            raise StackError(f"a stack needs at least {min_images} images, got {len(sources)}")
        self.sources = list(sources)
        self.names = [s.name for s in sources]
        self._bad = np.array(list(invalid_mask_values), dtype=np.float64)
        self._datasets: dict[str, gdal.Dataset] = {}
        self._read_bytes = 0
        self.grid: RasterGrid | None = None
        self.nodata: float | None = None
        self.source_dtype = "float32"
        self._nodata: list[float | None] = []
        self.implausible: dict[int, float] = {}  # image -> a value beyond IMPLAUSIBLE found in it (read as invalid)
        # image -> (whether its mask matched an invalid value anywhere read, a few of the mask's values seen)
        self.mask_seen: dict[int, tuple[bool, set]] = {}
        try:
            for src in self.sources:
                ds = self._dataset(src.path, "raster")
                grid = grid_of(ds)
                band = _band(ds, src.band, src.name)
                if self.grid is None:
                    self.grid, self.nodata = grid, band.GetNoDataValue()
                    self.source_dtype = np.dtype(gdal_array_type(band.DataType)).name
                else:
                    check_same_grid(grid, self.grid, src.name, self.names[0])
                self._nodata.append(band.GetNoDataValue())
                if src.mask_path:
                    mds = self._dataset(src.mask_path, "mask raster")
                    mname = os.path.basename(src.mask_path)
                    check_same_grid(grid_of(mds), self.grid, mname, self.names[0])
                    _band(mds, src.mask_band, mname)
        except Exception:
            self.close()
            raise

    def _dataset(self, path: str, what: str) -> gdal.Dataset:
        if path not in self._datasets:
            self._datasets[path] = open_dataset(path, what)
        return self._datasets[path]

    @property
    def count(self) -> int:
        return len(self.sources)

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def width(self) -> int:
        return self.grid.width

    def read(self, rows: slice = slice(None), cols: slice = slice(None), frames: Sequence[int] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of a window as float32 ``(T, h, w)`` (invalid pixels 0) and their validity (bool):
        nodata, non-finite and masked pixels are invalid. ``frames``: which images (all by default)."""
        r0, r1, _ = rows.indices(self.height)
        c0, c1, _ = cols.indices(self.width)
        h, w = max(r1 - r0, 0), max(c1 - c0, 0)
        idx = range(self.count) if frames is None else list(frames)
        data = np.empty((len(idx), h, w), dtype=np.float32)  # filled in place: no float64 copy, no stacking copy
        valid = np.empty((len(idx), h, w), dtype=bool)
        for k, t in enumerate(idx):
            src = self.sources[t]
            arr = _read_window(self._dataset(src.path, "raster"), src.band, src.name, c0, r0, w, h)
            ok = valid_pixels(arr, self._nodata[t])
            if arr.dtype.kind == "f" and t not in self.implausible:
                wild = np.isfinite(arr) & (np.abs(arr) >= IMPLAUSIBLE)
                if wild.any():
                    self.implausible[t] = float(arr[wild].flat[0])
            if src.mask_path:
                marr = _read_window(self._dataset(src.mask_path, "mask raster"), src.mask_band,
                                    os.path.basename(src.mask_path), c0, r0, w, h)
                hit = np.isin(marr.astype(np.float64), self._bad)
                ok &= ~hit
                matched, values = self.mask_seen.get(t, (False, set()))
                if not matched:
                    if len(values) < MASK_VALUES_SHOWN:
                        values |= set(np.unique(marr).tolist())
                    self.mask_seen[t] = (bool(hit.any()), values)
            np.copyto(data[k], arr, casting="unsafe")  # as float32 (exact for 8/16-bit integers)
            data[k][~ok] = 0.0
            valid[k] = ok
        self._read_bytes += data.nbytes
        if self._read_bytes > CACHE_RELEASE_BYTES:  # GDAL keeps read blocks up to its cache size (5 % of RAM)
            for ds in self._datasets.values():
                ds.FlushCache()
            self._read_bytes = 0
        return data, valid

    def implausible_warnings(self) -> list[str]:
        """One line per image where values no sensor produces were read (and treated as invalid)."""
        return [f"WARNING: '{self.names[t]}' holds values no sensor produces (e.g. {v:g}); they are treated as invalid. "
                f"If they mark missing data, declare it as the file's nodata value (e.g. gdal_edit.py -a_nodata {v:g})"
                for t, v in sorted(self.implausible.items())]

    def mask_warnings(self) -> list[str]:
        """One line when no mask marked anything invalid in what was read (after a whole pass: anywhere) although
        the masks hold several values: their codes are probably not the mask values given. A mask that marks
        nothing while others do is a clear date, and masks holding one value only are all clear."""
        if not self.mask_seen or any(matched for matched, _ in self.mask_seen.values()):
            return []
        values = sorted(set().union(*(v for _, v in self.mask_seen.values())))
        if len(values) < 2:
            return []
        bad = ", ".join(f"{v:g}" for v in self._bad)
        held = ", ".join(f"{v:g}" for v in values[:MASK_VALUES_SHOWN]) + (", ..." if len(values) > MASK_VALUES_SHOWN else "")
        return [f"WARNING: no mask marks any pixel invalid: none of their values ({held}) is one of the mask values "
                f"that mark invalid pixels ({bad}). If their codes differ (not Fmask), give them (CLI "
                f"--mask-invalid-values, QGIS 'Mask values that mark invalid pixels')"]

    def warnings(self) -> list[str]:
        """Everything a user should hear about what was read so far (a job logs it after its whole pass)."""
        return self.implausible_warnings() + self.mask_warnings()

    def close(self) -> None:
        self._datasets.clear()

    def __enter__(self) -> "StackReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gdal_array_type(gdt: int) -> type:
    """The numpy type GDAL reads a band of data type ``gdt`` as."""
    from osgeo import gdal_array

    return gdal_array.GDALTypeCodeToNumericTypeCode(gdt) or np.float64


def _band(ds: gdal.Dataset, band: int, name: str) -> gdal.Band:
    if band < 1 or band > ds.RasterCount:
        raise StackError(f"'{name}' has {ds.RasterCount} band(s); band {band} does not exist")
    b = ds.GetRasterBand(band)
    if b.DataType in _COMPLEX_TYPES:
        raise StackError(f"'{name}' has complex pixels ({gdal.GetDataTypeName(b.DataType)}), which are not supported")
    return b


def _read_window(ds: gdal.Dataset, band: int, name: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    try:
        arr = ds.GetRasterBand(band).ReadAsArray(x, y, w, h)
    except RuntimeError as exc:
        raise StackError(f"'{name}' is corrupted or truncated: {str(exc).strip()}") from exc
    if arr is None:
        raise StackError(f"'{name}' could not be read (corrupted or truncated file?)")
    return arr
