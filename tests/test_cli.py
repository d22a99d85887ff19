"""The command-line interface on the real Landsat 7 sample."""
import json
import os
import subprocess
import sys

import numpy as np
from osgeo import gdal

from conftest import ROOT


def _run(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"))
    return subprocess.run([sys.executable, "-m", "stacksr", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_classic_ibp_writes_georeferenced_x3(sample_images, sample_masks, tmp_path):
    out = tmp_path / "sr.tif"
    res = _run("classic", "--inputs", *sample_images, "--masks", *sample_masks, "--scale", "3",
               "--method", "ibp", "--iterations", "10", "--output", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["images"] == 8 and summary["method"] == "ibp"
    assert "100.0%" in res.stderr  # progress bar
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize) == (183, 183)
    assert ds.GetGeoTransform()[1] == 10.0
    arr = ds.GetRasterBand(1).ReadAsArray()
    ds = None
    assert np.isfinite(arr).all() and 0 < np.median(arr) < 10000


def test_cli_ibp_chooses_its_iterations_and_weighs_the_dates_by_agreement_and_records_both(sample_images, sample_masks,
                                                                                             tmp_path):
    from stacksr.core.classic.baselines import IBP_CANDIDATES

    out = tmp_path / "sr.tif"
    res = _run("classic", "--inputs", *sample_images, "--masks", *sample_masks, "--method", "ibp", "--output", str(out))
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stderr.splitlines() if "IBP iterations:" in ln)
    count = int(line.split("IBP iterations:")[1].split()[0])
    assert count in IBP_CANDIDATES and "held-out RMS error" in line
    ds = gdal.Open(str(out))
    params = json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))
    ds = None
    assert params["iterations"] == count and params["robust_fusion"] is True
    fusion = next(ln for ln in res.stderr.splitlines() if "robust fusion:" in ln)
    shares = [float(x) for x in fusion.split("reference date")[1].split(",")]
    assert len(shares) == 8 and all(0 <= x <= 1 for x in shares) and max(shares) == 1.0


def test_cli_bad_input_exits_2_with_one_line_and_no_output(sample_images, tmp_path):
    out = tmp_path / "sr.tif"
    res = _run("--quiet", "classic", "--inputs", sample_images[0], "--output", str(out))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == ["stacksr: error: a stack needs at least 2 images, got 1"]
    assert not out.exists()
    res = _run("--quiet", "classic", "--inputs", *sample_images[:2], "--scale", "5", "--output", str(out))
    assert res.returncode == 2 and "scale must be one of" in res.stderr and not out.exists()
    res = _run("--quiet", "classic", "--inputs", *sample_images[:2], "--output", sample_images[0])
    assert res.returncode == 2 and "is one of the inputs" in res.stderr


def test_cli_score_reports_cpsnr(sample_images, tmp_path):
    import shutil

    copy = shutil.copy(sample_images[0], tmp_path / "copy.tif")  # identical pixels, another file
    res = _run("score", "--sr", str(copy), "--reference", sample_images[0])
    assert res.returncode == 0, res.stderr
    scores = json.loads(res.stdout)
    assert scores["cpsnr"] > 100 and scores["ssim"] > 0.999
    same = _run("score", "--sr", sample_images[0], "--reference", sample_images[0])
    assert same.returncode == 2 and "the SR raster and the reference are the same file" in same.stderr
