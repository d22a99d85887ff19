"""The provider through the real qgis_process binary on real files."""
import json
import subprocess

import numpy as np
from osgeo import gdal

from conftest import QGIS_PROCESS, enabled_plugin_profile
from stacksr.core.job_settings import KernelSettings


def _qgis_process(*args, timeout=300):
    return subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True, timeout=timeout)


def test_qgis_process_lists_stacksr_algorithms():
    res = _qgis_process("list")
    assert res.returncode == 0, res.stderr
    assert "stacksr:superresolveclassic" in res.stdout and "stacksr:score" in res.stdout


def test_qgis_process_ignores_another_python_first_on_path(tmp_path):
    """pyenv or conda first on PATH, with their PYTHONHOME / PYTHONPATH: QGIS embeds Debian's Python and must not
    take their home or compiled modules (it segfaulted)."""
    import os

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 3\n")
    (fake / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "PYTHONHOME": str(tmp_path / "conda"),
           "PYTHONPATH": str(tmp_path / "conda" / "lib" / "python3.12" / "site-packages")}
    res = subprocess.run([QGIS_PROCESS, "list"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stacksr:superresolve" in res.stdout


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
    from stacksr.core.io.whole_reads import read_stack
    from stacksr.core.io.stack_sources import sources_from_inputs

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
    from stacksr.core.io.kernel_bank import KernelBank

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


def test_qgis_process_trains_on_real_landsat_and_superresolve_loads_the_model(sample_images, sample_masks, tmp_path):
    stack_args = [f"--LAYERS={p}" for p in sample_images] + [f"--MASKS={p}" for p in sample_masks]
    model = tmp_path / "model.pt"
    res = _qgis_process("run", "stacksr:trainselfsupervised", "--json", *stack_args, "--SCALE=3", "--STEPS=4",
                        "--BATCH=2", f"--OUTPUT_MODEL={model}", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert payload["results"]["STEPS_DONE"] == 4 and model.exists()

    out, unc = tmp_path / "sr.tif", tmp_path / "sr_std.tif"
    res = _qgis_process("run", "stacksr:superresolve", "--json", *stack_args, f"--MODEL={model}", "--SCALE=3",
                        "--METHOD=1", "--TILE=32", f"--OUTPUT={out}", f"--OUTPUT_UNCERTAINTY={unc}")
    assert res.returncode == 0, res.stdout + res.stderr
    src, sr, std = gdal.Open(sample_images[0]), gdal.Open(str(out)), gdal.Open(str(unc))
    assert (sr.RasterXSize, sr.RasterYSize) == (183, 183)
    assert sr.GetGeoTransform()[0] == src.GetGeoTransform()[0] and sr.GetGeoTransform()[1] == 10.0
    arr, sd = sr.GetRasterBand(1).ReadAsArray(), std.GetRasterBand(1).ReadAsArray()
    src = sr = std = None
    assert np.isfinite(arr).all() and (sd[sd != -9999] > 0).all()

    res = _qgis_process("run", "stacksr:superresolve", *stack_args, f"--MODEL={model}", "--SCALE=2",
                        f"--OUTPUT={tmp_path / 'x2.tif'}")
    assert res.returncode != 0 and "is for scale x3, not x2" in res.stdout + res.stderr
    assert not (tmp_path / "x2.tif").exists()


def test_without_torch_the_provider_loads_and_algorithms_say_how_to_install_it(sample_images, tmp_path):
    import os

    from conftest import ROOT

    # the plugin folder on the path, but not the venv that holds torch
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pkg = os.path.join(ROOT, ".build", "pkg")
    home = tmp_path / "home"
    profile = enabled_plugin_profile(home)
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=pkg, PYTHONPATH=pkg, XDG_RUNTIME_DIR=str(home))
    listing = subprocess.run(["/usr/bin/qgis_process.bin", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert "stacksr:superresolve" in listing.stdout
    out = tmp_path / "x.tif"
    res = subprocess.run(["/usr/bin/qgis_process.bin", "run", "stacksr:superresolveclassic",
                          *[f"--LAYERS={p}" for p in sample_images[:2]], f"--OUTPUT={out}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode != 0
    text = res.stdout + res.stderr
    deps = profile / "stacksr_deps" / "python3.11"
    assert "StackSR needs PyTorch" in text
    assert f'/usr/bin/python3.11" -m pip install --target "{deps}" torch==2.13.0' in text
    assert not out.exists()
    # what the install puts into the plugin-owned folder (here: links to the venv's packages) is found
    # at the next start, and the algorithm runs
    import torch

    deps.mkdir(parents=True)
    site = os.path.dirname(os.path.dirname(torch.__file__))
    for name in os.listdir(site):
        os.symlink(os.path.join(site, name), deps / name)
    from stacksr.deps import prune

    prune(str(deps))  # as after a real install: QGIS's numpy/GDAL must stay the ones used
    res = subprocess.run(["/usr/bin/qgis_process.bin", "run", "stacksr:superresolveclassic", "--SCALE=2",
                          *[f"--LAYERS={p}" for p in sample_images[:2]], f"--OUTPUT={out}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert out.exists()


def test_ibp_with_the_estimated_kernel_bank_runs_in_qgis_process_and_the_cli(sample_images, tmp_path):
    """Degradation-aware IBP: each image blurred with its own kernel of the bank; refused where the
    bank does not cover the images."""
    import os
    import sys

    from conftest import ROOT
    from stacksr.core.jobs.kernel_job import run_estimate_kernels
    from stacksr.core.io.stack_io import ImageSource

    bank = str(tmp_path / "bank.npz")
    run_estimate_kernels([ImageSource(p) for p in sample_images[:4]], KernelSettings(bank, scale=3, mode="joint",
                         iterations=5))
    outs = {}
    for way in ("qgis_process", "cli", "gaussian"):
        out = tmp_path / f"{way}.tif"
        if way == "qgis_process":
            res = _qgis_process("run", "stacksr:superresolveclassic", "--json", *[f"--LAYERS={p}" for p in sample_images[:4]],
                                "--SCALE=3", "--METHOD=1", "--ITERATIONS=10", f"--KERNEL_BANK={bank}", f"--OUTPUT={out}")
        else:
            env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"))
            bank_args = ["--kernel-bank", bank] if way == "cli" else []
            res = subprocess.run([sys.executable, "-m", "stacksr", "--quiet", "sr", "--inputs", *sample_images[:4],
                                  "--method", "ibp", "--iterations", "10", *bank_args, "--output", str(out)],
                                 capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        ds = gdal.Open(str(out))
        outs[way] = ds.GetRasterBand(1).ReadAsArray()
        meta = json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))
        ds = None
        assert meta["kernel_bank"] == (None if way == "gaussian" else "bank.npz")
    assert np.array_equal(outs["qgis_process"], outs["cli"])
    assert not np.allclose(outs["cli"], outs["gaussian"])
    res = _qgis_process("run", "stacksr:superresolveclassic", *[f"--LAYERS={p}" for p in sample_images[2:6]],
                        "--SCALE=3", "--METHOD=1", f"--KERNEL_BANK={bank}", f"--OUTPUT={tmp_path / 'other.tif'}")
    assert res.returncode != 0 and "has no kernel for" in res.stdout + res.stderr
    assert not (tmp_path / "other.tif").exists()


def test_qgis_process_runs_the_one_click_chain(sample_images, tmp_path):
    out, work = tmp_path / "chain.tif", tmp_path / "work"
    res = _qgis_process("run", "stacksr:superresolvechain", "--json", *[f"--LAYERS={p}" for p in sample_images[:3]],
                        "--SCALE=3", "--STEPS=2", f"--WORK_FOLDER={work}", f"--OUTPUT={out}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    payload = json.loads(res.stdout[res.stdout.index("{"):])
    assert payload["results"]["OUTPUT"] == str(out) and (work / "piunet.pt").exists()
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("STACKSR_METHOD") in ("piunet+ttf", "ibp", "blend", "bicubic-ref")  # auto's choice
    assert json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))["requested_method"] == "auto"
    ds = None


def test_qgis_process_refuses_outputs_beyond_the_free_space_and_reports_a_full_disk_in_one_line(sample_images, tmp_path):
    """The QGIS side of the disk checks: a raster of terabytes is refused before any reading, and a write that fails
    (a file-size limit standing in for a full disk) is a processing error naming the folder, not a traceback, with
    nothing of the run left."""
    import os
    import resource
    import signal

    from test_bad_inputs import _huge_dates

    out = tmp_path / "out"
    out.mkdir()
    huge = _huge_dates(tmp_path)
    res = _qgis_process("run", "stacksr:superresolveclassic", *[f"--LAYERS={p}" for p in huge], "--SCALE=3",
                        "--METHOD=1", f"--OUTPUT={out / 'sr.tif'}", timeout=120)
    assert res.returncode != 0 and "the outputs need up to 36.0 TB" in res.stdout + res.stderr
    assert os.listdir(out) == []

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    res = subprocess.run([QGIS_PROCESS, "run", "stacksr:superresolveclassic", *[f"--LAYERS={p}" for p in sample_images[:3]],
                          "--SCALE=3", "--METHOD=1", f"--OUTPUT={out / 'sr.tif'}"], capture_output=True, text=True,
                         timeout=300, preexec_fn=small_files)
    text = res.stdout + res.stderr
    assert res.returncode != 0 and f"writing into '{out}' failed" in text and "Traceback" not in text, text[-3000:]
    assert os.listdir(out) == []
