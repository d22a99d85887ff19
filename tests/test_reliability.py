"""Reliability: bad values, numerical safety, cancellation timing, determinism, kept outputs."""
import hashlib
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import torch
from osgeo import gdal

from stacksr.core.errors import ParameterError, StackSRError
from stacksr.core.jobs.kernel_job import run_estimate_kernels
from stacksr.core.jobs.sr_job import run_superresolve
from stacksr.core.jobs.train_job import run_train_self_supervised
from stacksr.core.learned.piunet import PIUNet, PIUNetConfig
from stacksr.core.progress import Cancelled, Monitor
from stacksr.core.io.stack_io import ImageSource, StackError
from stacksr.core.io.whole_reads import read_stack
from stacksr.core.learned.model_files import load_model, save_model
from stacksr.core.learned.training import TrainConfig, TrainState
from stacksr.core.job_settings import KernelSettings, SuperResolveSettings, TrainSettings

gdal.UseExceptions()
METHODS = ("bicubic", "ibp", "piunet", "piunet+ttf")


def _write(path, arr, dtype=gdal.GDT_Float32, like=None, nodata=None):
    """A GeoTIFF with the sample's georeferencing (or a plain UTM grid)."""
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(str(path), arr.shape[1], arr.shape[0], 1, dtype)
    if like:
        src = gdal.Open(like)
        ds.SetGeoTransform(src.GetGeoTransform())
        ds.SetProjection(src.GetProjection())
        src = None
    else:
        ds.SetGeoTransform((500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0))
    band = ds.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(arr)
    band = None
    ds = None  # keep the dataset alive until its band is released (GDAL 3.6)
    return str(path)


def _sources(paths):
    return [ImageSource(p) for p in paths]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.pt")
    torch.manual_seed(0)
    save_model(path, PIUNet(PIUNetConfig(scale=3, features=16, blocks=4)), TrainConfig(scale=3), "test", TrainState())
    return path


def _run_all_methods(paths, tmp_path, model):
    outs = {}
    for m in METHODS:
        out = str(tmp_path / f"{m.replace('+', '_')}.tif")
        run_superresolve(_sources(paths), SuperResolveSettings(out, scale=3, method=m, iterations=5, model_path=model,
                         ttf_iterations=3, uncertainty_output=out.replace(".tif",
                         "_std.tif") if m.startswith("piunet") else None))
        ds = gdal.Open(out)
        outs[m] = ds.GetRasterBand(1).ReadAsArray()
        ds = None
    return outs


def test_nan_and_inf_pixels_are_nodata_and_never_reach_the_output(sample_images, tmp_path, tiny_model):
    paths = []
    for i, src in enumerate(sample_images[:4]):
        ds = gdal.Open(src)
        arr = ds.GetRasterBand(1).ReadAsArray().astype(np.float32)
        ds = None
        arr[5 + i, :] = np.nan
        arr[:, 7 + 2 * i] = np.inf
        arr[30, 30] = -np.inf
        paths.append(_write(tmp_path / f"f{i}.tif", arr, like=src, nodata=-9999))
    stack = read_stack(_sources(paths))
    assert not stack.valid[0, 5].any() and not stack.valid[1, :, 9].any() and not stack.valid[:, 30, 30].any()
    for m, arr in _run_all_methods(paths, tmp_path, tiny_model).items():
        covered = np.kron(read_stack(_sources(paths)).valid.any(axis=0), np.ones((3, 3))) > 0
        assert np.isfinite(arr[covered]).all() and (arr[~covered] == -9999).all(), m


def test_stack_of_only_nan_and_inf_is_refused(tmp_path):
    paths = [_write(tmp_path / f"n{i}.tif", np.full((20, 20), v, np.float32)) for i, v in enumerate([np.nan, np.inf])]
    with pytest.raises(StackError, match="every pixel of every image is nodata"):
        run_superresolve(_sources(paths), SuperResolveSettings(str(tmp_path / "out.tif")))
    assert sorted(os.listdir(tmp_path)) == ["n0.tif", "n1.tif"]


@pytest.mark.parametrize("kind", ["constant", "nearly constant", "uint16 full range", "int16 full range"])
def test_every_method_gives_finite_output_on_degenerate_and_high_dynamic_range_stacks(kind, sample_images, tmp_path,
                                                                                      tiny_model):
    rng = np.random.default_rng(0)
    paths = []
    for i, src in enumerate(sample_images[:4]):
        ds = gdal.Open(src)
        real = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
        ds = None
        if kind == "constant":
            arr, dtype = np.full(real.shape, 1234, np.uint16), gdal.GDT_UInt16
        elif kind == "nearly constant":
            arr, dtype = (1234 + (rng.random(real.shape) < 0.01)).astype(np.uint16), gdal.GDT_UInt16
        else:  # the real image stretched to the type's full range, extremes included
            lo, hi, dtype = (0, 65535, gdal.GDT_UInt16) if kind.startswith("uint16") else (-32768, 32767, gdal.GDT_Int16)
            stretched = lo + (real - real.min()) / (real.max() - real.min()) * (hi - lo)
            arr = np.round(stretched).astype(np.uint16 if lo == 0 else np.int16)
        paths.append(_write(tmp_path / f"d{i}.tif", arr, dtype, like=src))
    outs = _run_all_methods(paths, tmp_path, tiny_model)
    for m, arr in outs.items():
        assert np.isfinite(arr).all(), m
        if kind == "constant":
            assert np.allclose(arr, 1234, atol=1.0), m
    for name in os.listdir(tmp_path):
        if name.endswith("_std.tif"):
            ds = gdal.Open(str(tmp_path / name))
            assert np.isfinite(ds.GetRasterBand(1).ReadAsArray()).all()
            ds = None
    bank = str(tmp_path / "bank.npz")
    res = run_estimate_kernels(_sources(paths[:2]), KernelSettings(bank, scale=3, mode="joint", iterations=6))
    assert all(np.isfinite([k["sigma1"], k["sigma2"]]).all() for k in res["kernels"])


def _crops(sources, folder, prefix, size):
    paths = []
    for i, src in enumerate(sources):
        ds = gdal.Translate(str(folder / f"{prefix}{i}.tif"), src, srcWin=[0, 0, size, size])
        ds = None
        paths.append(str(folder / f"{prefix}{i}.tif"))
    return paths


def test_rasters_smaller_than_the_kernel_or_the_patch_are_refused(sample_images, tmp_path):
    small = _crops(sample_images[:2], tmp_path, "s", 3)
    with pytest.raises(StackError, match="3x3 pixels are too small"):
        run_superresolve(_sources(small), SuperResolveSettings(str(tmp_path / "sr.tif")))
    with pytest.raises(StackError, match="smaller than the 15x15 kernel"):
        run_estimate_kernels(_sources(small), KernelSettings(str(tmp_path / "bank.npz"), scale=3))
    mid = _crops(sample_images[:2], tmp_path, "m", 20)
    with pytest.raises(StackError, match="too small for .*training and validation patches"):
        run_train_self_supervised([_sources(mid)], TrainSettings(str(tmp_path / "m.pt"), kernel_bank=None, scale=3,
                                  steps=2, patch=8))
    assert sorted(os.listdir(tmp_path)) == ["m0.tif", "m1.tif", "s0.tif", "s1.tif"]


def _unwritable(folder):
    """Make ``folder`` unwritable even for root (immutable attribute), else by permissions."""
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)
    os.chmod(folder, 0o555)
    return lambda: os.chmod(folder, 0o755)


def test_unwritable_output_folder_is_refused_before_any_work(sample_images, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    restore = _unwritable(locked)
    try:
        with pytest.raises(StackError, match="is not writable"):
            run_superresolve(_sources(sample_images[:2]), SuperResolveSettings(str(locked / "sr.tif")))
        with pytest.raises(StackError, match="is not writable"):
            run_estimate_kernels(_sources(sample_images[:2]), KernelSettings(str(locked / "bank.npz")))
        with pytest.raises(StackError, match="is not writable"):
            run_train_self_supervised([_sources(sample_images[:2])], TrainSettings(str(locked / "m.pt"),
                                      kernel_bank=None))
    finally:
        restore()
    assert os.listdir(locked) == []


def test_model_file_of_another_format_version_is_refused(tiny_model, tmp_path, sample_images):
    payload = torch.load(tiny_model, weights_only=True)
    payload["version"] = 99
    future = str(tmp_path / "future.pt")
    torch.save(payload, future)
    with pytest.raises(StackSRError, match="format version 99, expected 1"):
        run_superresolve(_sources(sample_images[:2]), SuperResolveSettings(str(tmp_path / "sr.tif"), method="piunet",
                         model_path=future))
    assert os.listdir(tmp_path) == ["future.pt"]


class _CancelAfter(Monitor):
    """Asks to cancel ``delay`` seconds after the first progress report; records when."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay, self.asked = delay, None

    def _emit(self, fraction, message):
        if self.asked is None and not hasattr(self, "_timer"):
            self._timer = threading.Timer(self.delay, lambda: setattr(self, "asked", time.perf_counter()))
            self._timer.start()

    def is_cancelled(self):
        return self.asked is not None


@pytest.mark.parametrize("job", ["kernel estimation", "TTF", "validation", "tiled prediction"])
def test_cancel_stops_long_work_within_two_seconds(job, sample_images, tmp_path_factory, tiny_model):
    mon = _CancelAfter(0.5)
    tmp_path = tmp_path_factory.mktemp("out")
    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        if job == "kernel estimation":
            run_estimate_kernels(_sources(sample_images), KernelSettings(str(out) + ".npz", scale=3, mode="per-image",
                                 iterations=5000), monitor=mon)
        elif job == "TTF":
            run_superresolve(_sources(sample_images), SuperResolveSettings(str(out) + ".tif", scale=3,
                             method="piunet+ttf", model_path=tiny_model, ttf_iterations=10000), monitor=mon)
        elif job == "validation":  # auto runs every candidate (TTF among them) before the chosen one
            run_superresolve(_sources(sample_images), SuperResolveSettings(str(out) + ".tif", scale=3, method="auto",
                             model_path=tiny_model, ttf_iterations=10000, iterations=1000), monitor=mon)
        else:  # the sample mirrored to 244 x 244 px: 64 tiles of the smallest size
            big = tmp_path_factory.mktemp("big")
            paths = []
            for i, p in enumerate(sample_images):
                ds = gdal.Open(p)
                arr = ds.GetRasterBand(1).ReadAsArray().astype(np.float32)
                ds = None
                paths.append(_write(big / f"b{i}.tif", np.tile(np.concatenate([arr, arr[::-1]]), (2, 4)), like=p))
            run_superresolve(_sources(paths), SuperResolveSettings(str(out) + ".tif", scale=3, method="piunet",
                             model_path=tiny_model, tile=32), monitor=mon)
    stopped = time.perf_counter()
    assert mon.asked is not None and stopped - mon.asked < 2.0
    assert os.listdir(tmp_path) == []


def test_cancelled_rerun_leaves_the_previous_output_intact(sample_images, tmp_path):
    out = str(tmp_path / "ibp.tif")
    run_superresolve(_sources(sample_images), SuperResolveSettings(out, scale=3, method="ibp", iterations=5))
    before = hashlib.sha256(open(out, "rb").read()).hexdigest()
    with pytest.raises(Cancelled):
        run_superresolve(_sources(sample_images), SuperResolveSettings(out, scale=3, method="ibp", iterations=1000),
                         monitor=_CancelAfter(0.3))
    assert hashlib.sha256(open(out, "rb").read()).hexdigest() == before
    assert os.listdir(tmp_path) == ["ibp.tif"]


def test_same_seed_gives_the_same_kernels_model_and_super_resolution(sample_images, tmp_path):
    srcs = _sources(sample_images[:4])
    digests, models, srs = [], [], []
    for run in ("a", "b"):
        bank = str(tmp_path / f"bank_{run}.npz")
        digests.append(run_estimate_kernels(srcs, KernelSettings(bank, scale=3, mode="joint", iterations=10, seed=3))["digest"])
        model = str(tmp_path / f"model_{run}.pt")
        run_train_self_supervised([srcs], TrainSettings(model, kernel_bank=bank, scale=3, steps=3, patch=6, batch=2,
                                  frames=4, seed=3))
        models.append(load_model(model)[0].state_dict())
        sr = str(tmp_path / f"sr_{run}.tif")
        run_superresolve(srcs, SuperResolveSettings(sr, scale=3, method="piunet+ttf", model_path=model,
                         ttf_iterations=3, tile=32))
        ds = gdal.Open(sr)
        srs.append(ds.GetRasterBand(1).ReadAsArray())
        ds = None
    assert digests[0] == digests[1]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
    assert np.array_equal(srs[0], srs[1], equal_nan=True)


def test_all_cloud_stack_is_refused_and_inputs_are_never_modified(sample_images, sample_masks, tmp_path):
    clouds = []
    for i, m in enumerate(sample_masks[:3]):
        ds = gdal.Open(m)
        arr = np.full((ds.RasterYSize, ds.RasterXSize), 4, np.uint8)  # fmask 4: cloud everywhere
        clouds.append(_write(tmp_path / f"cloud{i}.tif", arr, gdal.GDT_Byte, like=m))
        ds = None
    digest = lambda paths: [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]  # noqa: E731
    before = digest(sample_images[:3] + clouds)
    srcs = [ImageSource(p, mask_path=m) for p, m in zip(sample_images[:3], clouds)]
    with pytest.raises(StackError, match="every pixel of every image is nodata or masked"):
        run_superresolve(srcs, SuperResolveSettings(str(tmp_path / "sr.tif")))
    run_superresolve(_sources(sample_images[:3]), SuperResolveSettings(str(tmp_path / "ok.tif"), method="ibp",
                     iterations=3))
    assert digest(sample_images[:3] + clouds) == before
    assert sorted(os.listdir(tmp_path)) == ["cloud0.tif", "cloud1.tif", "cloud2.tif", "ok.tif"]


def test_ttf_per_tile_finetunes_every_tile_and_writes_a_complete_raster(sample_images, tmp_path, tiny_model):
    once, per_tile = str(tmp_path / "once.tif"), str(tmp_path / "per_tile.tif")
    for out, flag in ((once, False), (per_tile, True)):
        res = run_superresolve(_sources(sample_images), SuperResolveSettings(out, scale=3, method="piunet+ttf",
                               model_path=tiny_model, tile=32, ttf_iterations=4, ttf_per_tile=flag,
                               kernel_output=out.replace(".tif", "_k.tif")))
        assert res["kernel"]
    arrays = []
    for out in (once, per_tile):
        ds = gdal.Open(out)
        arrays.append(ds.GetRasterBand(1).ReadAsArray())
        assert '"ttf_per_tile": ' + ("true" if out == per_tile else "false") in ds.GetMetadataItem("STACKSR_PARAMETERS")
        ds = None
    assert np.isfinite(arrays[1][arrays[1] != -9999]).all() and arrays[1].shape == (183, 183)
    assert not np.array_equal(arrays[0], arrays[1])  # each tile got its own finetuning


def test_ttf_fits_the_stack_by_default_records_the_choice_and_refuses_an_unknown_one(sample_images, tmp_path, tiny_model):
    for fit in (None, "reference"):
        out = str(tmp_path / f"sr_{fit}.tif")
        run_superresolve(_sources(sample_images), SuperResolveSettings(out, scale=3, method="piunet+ttf",
                         model_path=tiny_model, ttf_iterations=2, ttf_fit=fit))
        ds = gdal.Open(out)
        assert f'"ttf_fit": "{fit or "stack"}"' in ds.GetMetadataItem("STACKSR_PARAMETERS")
        ds = None
    bad = str(tmp_path / "bad.tif")
    with pytest.raises(ParameterError, match="TTF fit must be one of"):
        run_superresolve(_sources(sample_images), SuperResolveSettings(bad, scale=3, method="piunet+ttf",
                         model_path=tiny_model, ttf_fit="all"))
    assert not os.path.exists(bad)


def test_outputs_of_one_run_land_together_or_not_at_all(sample_images, tmp_path, tiny_model, monkeypatch):
    """A failure while writing the last output (the TTF kernel layer) leaves none of the run's
    outputs behind, not an SR raster without its companions."""
    import stacksr.core.degradation.kernels as kernels

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(kernels, "write_kernel_layer", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_superresolve(_sources(sample_images), SuperResolveSettings(str(tmp_path / "sr.tif"), scale=3,
                         method="piunet+ttf", model_path=tiny_model, ttf_iterations=2,
                         uncertainty_output=str(tmp_path / "std.tif"), kernel_output=str(tmp_path / "k.tif"),
                         report_html=str(tmp_path / "r.html")))
    assert os.listdir(tmp_path) == []


def test_ttf_learning_rates_are_used_and_out_of_range_ones_refused(sample_images, tmp_path, tiny_model):
    base = dict(method="piunet+ttf", model_path=tiny_model, ttf_iterations=3)
    outs = []
    for i, lr in enumerate((None, 0.05)):
        out = str(tmp_path / f"sr{i}.tif")
        run_superresolve(_sources(sample_images), SuperResolveSettings(out, 3, ttf_lr=lr, **base))
        ds = gdal.Open(out)
        outs.append(ds.GetRasterBand(1).ReadAsArray())
        ds = None
    assert not np.array_equal(outs[0], outs[1])
    with pytest.raises(ParameterError, match="TTF learning rate must be a number above 0 and up to 0.9, got 5"):
        run_superresolve(_sources(sample_images), SuperResolveSettings(str(tmp_path / "bad.tif"), 3, ttf_kernel_lr=5.0,
                                                                       **base))
    assert not os.path.exists(tmp_path / "bad.tif")


def test_an_image_that_cannot_be_registered_is_reported_and_left_out(sample_images, tmp_path):
    import json

    other = np.fliplr(gdal.Open(sample_images[3]).ReadAsArray()).astype(np.float32)  # another place
    paths = list(sample_images)
    paths[3] = _write(tmp_path / "other_place.tif", other, like=sample_images[3])
    infos = []

    class Log(Monitor):
        def info(self, message):
            infos.append(message)

    out = str(tmp_path / "sr.tif")
    res = run_superresolve(_sources(paths), SuperResolveSettings(out, scale=3, method="ibp", iterations=5),
                           monitor=Log())
    assert res["images"] == 8 and res["images_used"] == 7
    assert any(m.startswith("other_place.tif") and "left out" in m for m in infos)
    ds = gdal.Open(out)
    reg = json.loads(ds.GetMetadataItem("STACKSR_REGISTRATION"))
    ds = None
    assert reg["other_place.tif"]["used"] is False and reg["other_place.tif"]["quality"] < 0.9
    assert sum(r["used"] for r in reg.values()) == 7
    res = run_superresolve(_sources(paths), SuperResolveSettings(out, scale=3, method="ibp", iterations=5,
                           min_registration_quality=0))
    assert res["images_used"] == 8
