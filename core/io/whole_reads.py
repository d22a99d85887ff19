"""Whole arrays: a stack read whole (training reads its stacks so) and one band read whole (scoring, the
benchmarks); everything else reads windows as the work needs them (:mod:`windows`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .stack_io import (FMASK_INVALID_VALUES, ImageSource, RasterGrid, StackError, StackReader, grid_of, open_dataset,
                       read_band, valid_pixels)


@dataclass
class RasterStack:
    data: np.ndarray  # float32 (T, H, W); invalid pixels hold arbitrary finite values
    valid: np.ndarray  # bool (T, H, W)
    names: list[str]
    grid: RasterGrid
    nodata: float | None
    source_dtype: str  # numpy dtype name of the first image
    sources: list[ImageSource] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # StackReader.warnings() of the read, for the job's log

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    def clear_fraction(self) -> np.ndarray:
        return self.valid.reshape(self.count, -1).mean(axis=1)

    def clearest_index(self) -> int:
        return int(np.argmax(self.clear_fraction()))


def read_stack(sources: Sequence[ImageSource], invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES, min_images: int = 2) -> RasterStack:
    """Read and validate a whole stack; raises :class:`StackError` with a message naming the bad input."""
    with StackReader(sources, invalid_mask_values, min_images) as reader:
        data, valid = reader.read()
        stack = RasterStack(data, valid, reader.names, reader.grid, reader.nodata, reader.source_dtype, list(sources),
                            reader.warnings())
    if not stack.valid.any():
        raise StackError(NOTHING_VALID)
    return stack


NOTHING_VALID = "every pixel of every image is nodata or masked (cloud/fill): nothing to super-resolve"


def read_raster(path: str, band: int = 1) -> tuple[np.ndarray, np.ndarray, RasterGrid, str]:
    """One band as float64 with its validity (nodata/non-finite) mask, grid and dtype name."""
    ds = open_dataset(path, "raster")
    grid = grid_of(ds)
    arr, nodata, _ = read_band(ds, band, os.path.basename(path))
    del ds
    a = arr.astype(np.float64)
    return a, valid_pixels(a, nodata), grid, arr.dtype.name
