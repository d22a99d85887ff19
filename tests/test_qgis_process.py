"""The provider through the real qgis_process binary on real files."""
import json
import subprocess

import numpy as np
from osgeo import gdal

from conftest import QGIS_PROCESS


def _qgis_process(*args, timeout=300):
    return subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True, timeout=timeout)


def test_qgis_process_lists_stacksr_algorithms():
    res = _qgis_process("list")
    assert res.returncode == 0, res.stderr
    assert "stacksr:superresolveclassic" in res.stdout and "stacksr:score" in res.stdout


def test_qgis_process_runs_ibp_on_real_landsat_and_output_is_georeferenced(sample_images, sample_masks, tmp_path):
    out = tmp_path / "qp_ibp.tif"
    args = ["run", "stacksr:superresolveclassic", "--json"]
    args += [f"--LAYERS={p}" for p in sample_images] + [f"--MASKS={p}" for p in sample_masks]
    args += ["--SCALE=3", "--METHOD=1", "--ITERATIONS=15", f"--OUTPUT={out}"]
    res = _qgis_process(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert payload["results"]["OUTPUT"] == str(out)

    src = gdal.Open(sample_images[0])
    sr = gdal.Open(str(out))
    sgt, ogt = src.GetGeoTransform(), sr.GetGeoTransform()
    assert (sr.RasterXSize, sr.RasterYSize) == (3 * src.RasterXSize, 3 * src.RasterYSize)
    assert ogt[0] == sgt[0] and ogt[3] == sgt[3]
    assert ogt[1] == sgt[1] / 3 and ogt[5] == sgt[5] / 3
    assert sr.GetSpatialRef().IsSame(src.GetSpatialRef())
    band = sr.GetRasterBand(1)
    assert band.GetNoDataValue() == -9999.0
    arr = band.ReadAsArray()
    del band
    sr = src = None
    valid = arr != -9999.0
    assert valid.mean() > 0.99
    # values stay in the input's reflectance units: the SR mean matches the mean of the dates
    from stacksr.core.stack_io import read_stack, sources_from_inputs

    stack = read_stack(sources_from_inputs(sample_images, masks=sample_masks))
    date_means = [stack.data[t][stack.valid[t]].mean() for t in range(stack.count)]
    assert abs(arr[valid].mean() - np.mean(date_means)) < 0.02 * np.mean(date_means)


def test_qgis_process_reports_bad_input(sample_images, tmp_path):
    out = tmp_path / "x.tif"
    res = _qgis_process("run", "stacksr:superresolveclassic", f"--LAYERS={sample_images[0]}", f"--OUTPUT={out}")
    assert res.returncode != 0
    assert "at least 2 images" in res.stdout + res.stderr
    assert not out.exists()


def test_qgis_process_estimates_kernels_on_real_landsat(sample_images, sample_masks, tmp_path):
    from stacksr.core.kernels import KernelBank

    args = ["run", "stacksr:estimatekernels", "--json"]
    args += [f"--LAYERS={p}" for p in sample_images] + [f"--MASKS={p}" for p in sample_masks]
    args += ["--SCALE=3", "--MODE=1", "--ITERATIONS=40", f"--OUTPUT_BANK={tmp_path / 'bank.npz'}",
             f"--OUTPUT_LAYERS={tmp_path / 'layers'}", f"--OUTPUT_REPORT={tmp_path / 'k.html'}"]
    res = _qgis_process(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert len(payload["results"]["KERNEL_LAYERS"]) == 8
    bank = KernelBank.load(str(tmp_path / "bank.npz"), scale=3)
    assert bank.kernels.shape == (8, 15, 15)
    ds = gdal.Open(payload["results"]["KERNEL_LAYERS"][0])
    assert ds.RasterXSize == 15 and abs(ds.ReadAsArray().sum() - 1) < 1e-4
    ds = None
