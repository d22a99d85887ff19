"""The scoring job: cPSNR, PSNR and SSIM of an SR raster against a reference raster."""
from __future__ import annotations

import numpy as np

from ..job_settings import ScoreSettings
from ..metrics import cpsnr, default_data_range, psnr, ssim
from ..io.outputs import same_file
from ..io.stack_io import StackError, check_same_grid
from ..io.whole_reads import read_raster


def run_score(settings: ScoreSettings) -> dict:
    """cPSNR (Proba-V), PSNR and SSIM of an SR raster against a reference raster of the same grid, with
    ``settings`` (:class:`ScoreSettings`)."""
    s = settings.checked()
    sr_path, reference_path, reference_mask = s.sr_path, s.reference_path, s.reference_mask
    sr_band, reference_band, max_shift, data_range = s.sr_band, s.reference_band, s.max_shift, s.data_range
    if same_file(sr_path, reference_path) and sr_band == reference_band:
        raise StackError(f"the SR raster and the reference are the same file ('{sr_path}'): choose the reference (truth) raster")
    sr, sr_ok, sr_grid, _ = read_raster(sr_path, sr_band)
    hr, hr_ok, hr_grid, hr_dtype = read_raster(reference_path, reference_band)
    if (sr_grid.width, sr_grid.height) != (hr_grid.width, hr_grid.height):
        raise StackError(f"'{sr_path}' is {sr_grid.width}x{sr_grid.height} px but the reference is {hr_grid.width}x{hr_grid.height} px")
    if sr_grid.crs_wkt and hr_grid.crs_wkt:
        check_same_grid(sr_grid, hr_grid, sr_path, reference_path)
    if reference_mask:
        mask, _, mgrid, _ = read_raster(reference_mask)
        check_same_grid(mgrid, hr_grid, reference_mask, reference_path)
        hr_ok &= ~np.isin(mask, np.asarray(list(s.invalid_mask_values), dtype=np.float64))
    rng = float(data_range) if data_range else default_data_range(hr_dtype, np.where(hr_ok, hr, np.nan))
    sr = np.where(sr_ok, sr, np.nan)
    try:
        c = cpsnr(sr, hr, hr_ok, max_shift=max_shift, data_range=rng)
        both = hr_ok & sr_ok
        p = psnr(sr, hr, both, data_range=rng)
        s = ssim(sr, hr, both, data_range=rng)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    return {"cpsnr": round(c.cpsnr, 4), "psnr": round(p, 4), "ssim": round(s, 5),
            "shift": list(c.shift), "bias": c.bias, "data_range": rng}
