"""Bad and unusual inputs found by an adversarial run (issue 14): each gets one clear line and
leaves nothing behind; numeric settings are checked once, in core.params, by every front end."""
import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal

from conftest import ROOT
from stacksr import cli
from stacksr.core import params as P
from stacksr.core.errors import ParameterError, StackSRError
from stacksr.core.jobs.chain_job import run_chain
from stacksr.core.jobs.kernel_job import run_estimate_kernels
from stacksr.core.jobs.score_job import run_score
from stacksr.core.jobs.sr_job import run_superresolve
from stacksr.core.jobs.train_job import run_train_self_supervised
from stacksr.core.io.stack_io import ImageSource
from stacksr.core.io.whole_reads import read_raster
from stacksr.core.job_settings import ChainSettings, KernelSettings, ScoreSettings, SuperResolveSettings, TrainSettings

gdal.UseExceptions()
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"))


def _cli(*args, timeout=120):
    """The CLI in its own process (what a user runs)."""
    return subprocess.run([sys.executable, "-m", "stacksr", "--quiet", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def _main(argv):
    """The CLI in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(["--quiet", *argv])
        except SystemExit as exc:  # argparse
            rc = exc.code
    return rc, err.getvalue()


def _one_line_error(rc, stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2, stderr
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


def _copy(src, dst, bands=1, geo=True, nodata=None, dtype=gdal.GDT_Float32, driver="GTiff"):
    """A raster made from a real sample image: ``bands`` copies of its band, with or without
    georeferencing, with a chosen nodata value."""
    s = gdal.Open(src)
    arr = s.GetRasterBand(1).ReadAsArray().astype(np.float64)
    gt, wkt = s.GetGeoTransform(), s.GetProjection()
    s = None
    ds = gdal.GetDriverByName("GTiff").Create(str(dst) if driver == "GTiff" else str(dst) + ".tmp.tif",
                                              arr.shape[1], arr.shape[0], bands, dtype)
    if geo:
        ds.SetGeoTransform(gt)
        ds.SetProjection(wkt)
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
            arr[:3, :3] = nodata
        band.WriteArray(arr)
        band = None
    if driver != "GTiff":
        gdal.GetDriverByName(driver).CreateCopy(str(dst), ds)
        ds = None
        os.remove(str(dst) + ".tmp.tif")
    ds = None
    return str(dst)


# 1. tiles smaller than the network's halo were accepted (an apparent hang), negative ones silently
@pytest.mark.slow
@pytest.mark.parametrize("tile", ["1", "-4", "31"])
def test_a_tile_below_the_minimum_is_refused_at_once(sample_images, tmp_path, tile):
    out = tmp_path / "sr.tif"
    t = time.perf_counter()
    res = _cli("sr", "--inputs", *sample_images[:3], "--method", "piunet", "--tile", tile, "--output", str(out))
    line = _one_line_error(res.returncode, res.stderr)
    assert "tile size" in line and "from 32" in line
    assert time.perf_counter() - t < 60 and not out.exists()


# 2. negative steps exited 0, named an output never written, and printed invalid JSON
def test_negative_training_steps_are_refused_and_nothing_is_written(sample_images, tmp_path):
    out = tmp_path / "m.pt"
    rc, err = _main(["train", "--inputs", *sample_images[:3], "--steps", "-5", "--output", str(out)])
    assert "training steps must be an integer from 1" in _one_line_error(rc, err)
    assert os.listdir(tmp_path) == []


def test_the_cli_prints_strict_json_even_for_non_finite_numbers():
    assert json.dumps(cli._json_safe({"best_val": float("inf"), "h": [(1, float("nan"))]}), allow_nan=False) == \
        '{"best_val": null, "h": [[1, null]]}'


# 3. Ctrl-C during the first steps left no resumable checkpoint
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_leaves_a_checkpoint_that_resumes(sample_images, tmp_path, sig):
    import torch

    bank = str(tmp_path / "k.npz")
    run_estimate_kernels([ImageSource(p) for p in sample_images], KernelSettings(bank, scale=3, mode="joint",
                         iterations=2))
    out = tmp_path / "m.pt"
    args = ["train", "--inputs", *sample_images, "--kernel-bank", bank, "--steps", "400", "--batch", "2", "--output", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "stacksr", *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=ENV)
    seen = ""
    while "step 1/" not in seen and "step 2/" not in seen:  # the bar on a pipe prints at the first step, then every 10 %
        line = proc.stderr.readline()
        assert line, "training ended before a step was reported"
        seen += line
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert f"resume with --resume {out}.last" in rest
    done = torch.load(f"{out}.last", weights_only=True)["state"]["step"]
    assert 1 <= done < 400
    resumed = _cli("train", "--inputs", *sample_images, "--kernel-bank", bank, "--steps", str(done + 2), "--batch", "2",
                   "--resume", f"{out}.last", "--output", str(tmp_path / "m2.pt"))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1], parse_constant=lambda c: pytest.fail(c))
    assert summary["steps"] == done + 2 and os.path.exists(tmp_path / "m2.pt")


# 4. tracebacks instead of one line
@pytest.mark.parametrize("argv", [
    ["kernels", "--iterations", "-5", "--output", "{tmp}/k.npz"],
    ["kernels", "--crop", "1", "--output", "{tmp}/k.npz"],
    ["train", "--batch", "0", "--output", "{tmp}/m.pt"],
    ["train", "--frames", "-1", "--output", "{tmp}/m.pt"],
    # 9. zero iterations meant "default" silently
    ["kernels", "--iterations", "0", "--output", "{tmp}/k.npz"],
])
def test_out_of_range_settings_get_one_line_and_no_file(sample_images, tmp_path, argv):
    argv = [a.format(tmp=tmp_path) for a in argv] + ["--inputs", *sample_images[:3]]
    line = _one_line_error(*_main(argv))
    assert "must be" in line
    assert os.listdir(tmp_path) == []


def test_the_smallest_accepted_kernel_crop_runs(sample_images, tmp_path):
    res = run_estimate_kernels([ImageSource(p) for p in sample_images[:2]], KernelSettings(str(tmp_path / "k.npz"),
                               scale=3, mode="joint", iterations=2, crop=P.KERNEL_CROP.minimum))
    assert res["images"] == 2


# 5. a 2-band raster among single images contributed band 1 only
def test_a_multiband_raster_among_the_dates_is_refused_by_name(sample_images, tmp_path):
    two = _copy(sample_images[0], tmp_path / "two_bands.tif", bands=2)
    out = tmp_path / "sr.tif"
    line = _one_line_error(*_main(["sr", "--inputs", two, *sample_images[1:3], "--output", str(out)]))
    assert "'two_bands.tif' has 2 bands" in line and "--multiband" in line
    assert not out.exists()


# 6. outputs were private (0600) whatever the umask
def test_outputs_follow_the_process_umask(sample_images, tmp_path):
    old = os.umask(0o022)
    try:
        run_superresolve([ImageSource(p) for p in sample_images[:3]], SuperResolveSettings(str(tmp_path / "sr.tif"),
                         scale=3, method="bicubic"))
        run_estimate_kernels([ImageSource(p) for p in sample_images[:2]], KernelSettings(str(tmp_path / "k.npz"),
                             scale=3, mode="joint", iterations=2))
    finally:
        os.umask(old)
    for name in ("sr.tif", "k.npz"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644, name


# 7. a .png name received GeoTIFF bytes
@pytest.mark.parametrize("name", ["x.png", "x.jpg", "x"])
def test_a_raster_output_must_be_a_geotiff_name(sample_images, tmp_path, name):
    line = _one_line_error(*_main(["sr", "--inputs", *sample_images[:3], "--output", str(tmp_path / name)]))
    assert ".tif or .tiff" in line
    assert os.listdir(tmp_path) == []


def test_qgis_refuses_a_png_output_before_running(processing, sample_images, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"\.tif or \.tiff"):
        processing.run("stacksr:superresolveclassic", {"LAYERS": sample_images[:3], "METHOD": 0, "SCALE": 3,
                                             "OUTPUT": str(tmp_path / "out.png")})
    assert not (tmp_path / "out.png").exists()


# 8. a folder in the output's place failed after all the work, naming the internal temp file
def test_an_output_that_is_a_folder_is_refused_before_any_work(sample_images, tmp_path):
    (tmp_path / "sr.tif").mkdir()
    t = time.perf_counter()
    line = _one_line_error(*_main(["sr", "--inputs", *sample_images[:3], "--method", "ibp", "--output",
                                   str(tmp_path / "sr.tif")]))
    assert "is a folder" in line and ".stacksr-" not in line
    assert time.perf_counter() - t < 10
    assert os.listdir(tmp_path) == ["sr.tif"] and os.listdir(tmp_path / "sr.tif") == []


# 10. rasters without georeferencing were accepted and given an invented geotransform
def test_rasters_without_georeferencing_need_the_users_consent(sample_images, tmp_path):
    plain = [_copy(p, tmp_path / f"plain{i}.tif", geo=False) for i, p in enumerate(sample_images[:3])]
    out = tmp_path / "sr.tif"
    line = _one_line_error(*_main(["sr", "--inputs", *plain, "--method", "bicubic", "--output", str(out)]))
    assert "'plain0.tif' has no georeferencing" in line and not out.exists()
    rc, err = _main(["sr", "--inputs", *plain, "--method", "bicubic", "--allow-ungeoreferenced", "--output", str(out)])
    assert rc == 0, err and out.exists()


def test_a_png_without_georeferencing_is_refused(sample_images, tmp_path):
    pngs = [_copy(p, tmp_path / f"d{i}.png", geo=False, dtype=gdal.GDT_UInt16, driver="PNG")
            for i, p in enumerate(sample_images[:2])]
    line = _one_line_error(*_main(["sr", "--inputs", *pngs, "--output", str(tmp_path / "sr.tif")]))
    assert "has no georeferencing" in line


# 11. a float64 nodata of -1e300 became -inf in the float32 output
def test_a_nodata_value_float32_cannot_hold_is_kept_exactly(sample_images, tmp_path):
    paths = [_copy(p, tmp_path / f"f{i}.tif", nodata=-1e300, dtype=gdal.GDT_Float64) for i, p in enumerate(sample_images[:3])]
    out = str(tmp_path / "sr.tif")
    run_superresolve([ImageSource(p) for p in paths], SuperResolveSettings(out, scale=3, method="bicubic"))
    ds = gdal.Open(out)
    band = ds.GetRasterBand(1)
    nodata, arr = band.GetNoDataValue(), band.ReadAsArray()
    band = None
    ds = None
    assert nodata == -1e300 and arr[0, 0] == -1e300 and np.isfinite(arr).all()
    _, ok, _, _ = read_raster(out)
    assert not ok[0, 0] and ok[-1, -1]


# 12. `classic --help` called the program `python -m stacksr sr`
def test_classic_help_names_the_classic_command():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.build_parser().parse_args(["classic", "--help"])
    assert out.getvalue().startswith("usage: python -m stacksr classic")


# the class of bug: every numeric setting of every command, out of range, in the CLI and the jobs
CLI_SETTINGS = [
    ("sr", "--iterations", P.IBP_ITERATIONS), ("sr", "--psf-sigma", P.PSF_SIGMA), ("sr", "--tile", P.TILE),
    ("sr", "--ttf-iterations", P.TTF_ITERATIONS), ("sr", "--ttf-lr", P.TTF_LR), ("sr", "--ttf-kernel-lr", P.TTF_LR),
    ("sr", "--reference", P.REFERENCE),
    ("kernels", "--iterations", P.KERNEL_ITERATIONS), ("kernels", "--crop", P.KERNEL_CROP), ("kernels", "--seed", P.SEED),
    ("train", "--steps", P.STEPS), ("train", "--lr", P.TRAIN_LR), ("train", "--patch", P.PATCH), ("train", "--batch", P.BATCH),
    ("train", "--frames", P.FRAMES), ("train", "--seed", P.SEED),
    ("score", "--max-shift", P.MAX_SHIFT), ("score", "--data-range", P.DATA_RANGE),
    ("sr", "--min-registration-quality", P.REGISTRATION_QUALITY),
    ("train-fkp", "--iterations", P.FKP_ITERATIONS), ("train-fkp", "--seed", P.SEED),
    ("chain", "--steps", P.CHAIN_STEPS), ("chain", "--seed", P.SEED),
]


def _outside(setting: P.Setting):
    """Values the setting must refuse: below, above, fractional for integers, non-finite."""
    low = st.floats(max_value=setting.minimum, exclude_max=not setting.open_minimum, allow_nan=False,
                    allow_infinity=False, min_value=-1e12)
    parts = [low]
    if setting.maximum is not None:
        parts.append(st.floats(min_value=setting.maximum, exclude_min=True, max_value=1e12, allow_nan=False))
    parts.append(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    if setting.integer:
        parts.append(st.integers(-1000, 1000).map(lambda v: v + 0.5))
    values = st.one_of(parts)
    if setting.integer:  # whole numbers outside the range stay integers
        values = values.map(lambda v: int(v) if np.isfinite(v) and float(v).is_integer() else v)
    return values.filter(lambda v: v not in setting.special)


def _cli_text(v) -> str:
    return str(v) if not isinstance(v, float) or np.isfinite(v) else {True: "inf", False: "-inf"}.get(v > 0, "nan")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CLI_SETTINGS), data=st.data())
def test_fuzz_out_of_range_cli_settings_exit_2_in_one_line_and_leave_no_file(sample_images, tmp_path_factory, case, data):
    command, flag, setting = case
    value = data.draw(_outside(setting), label="value")
    folder = tmp_path_factory.mktemp("fuzz")
    if command == "score":
        argv = ["score", "--sr", sample_images[0], "--reference", sample_images[1]]
    elif command == "train-fkp":
        argv = ["train-fkp", "--scale", "3", "--output", str(folder / "prior.pt")]
    else:
        out = folder / {"sr": "out.tif", "kernels": "k.npz", "train": "m.pt", "chain": "out.tif"}[command]
        argv = [command, "--inputs", *sample_images[:3], "--output", str(out)]
        if command == "chain":
            argv += ["--work-folder", str(folder)]
        if command == "sr":
            argv += ["--method", "piunet+ttf"]
    rc, err = _main(argv + [f"{flag}={_cli_text(value)}"])
    _one_line_error(rc, err)
    assert os.listdir(folder) == []


JOBS = {"sr": (run_superresolve, SuperResolveSettings), "kernels": (run_estimate_kernels, KernelSettings),
        "train": (run_train_self_supervised, TrainSettings), "chain": (run_chain, ChainSettings)}


def _numeric_settings(cls) -> dict:
    """Every numeric setting of a job's settings class, with its range (:mod:`params`)."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls) if "setting" in f.metadata}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=st.sampled_from(sorted(JOBS)), data=st.data())
def test_fuzz_out_of_range_job_settings_raise_the_user_error_and_leave_no_file(sample_images, tmp_path_factory, job, data):
    func, cls = JOBS[job]
    keys = _numeric_settings(cls)
    key = data.draw(st.sampled_from(sorted(keys)), label="setting")
    value = data.draw(_outside(keys[key]), label="value")
    folder = tmp_path_factory.mktemp("fuzzjob")
    sources = [ImageSource(p) for p in sample_images[:3]]
    out = str(folder / {"sr": "out.tif", "kernels": "k.npz", "train": "m.pt", "chain": "out.tif"}[job])
    chosen = cls(out, folder, **{key: value}) if job == "chain" else cls(out, **{key: value})
    with pytest.raises(ParameterError):
        func([sources] if job == "train" else sources, chosen)
    assert os.listdir(folder) == []


def test_every_user_error_shares_one_base_class():
    from stacksr.core.degradation.fkp import FKPError
    from stacksr.core.io.kernel_bank import KernelBankError
    from stacksr.core.io.stack_io import StackError
    from stacksr.core.learned.model_files import ModelFileError

    assert all(issubclass(e, StackSRError) for e in (FKPError, KernelBankError, StackError, ModelFileError, ParameterError))


def test_score_refuses_an_out_of_range_shift_before_reading(sample_images):
    with pytest.raises(ParameterError, match="maximum shift"):
        run_score(ScoreSettings(sample_images[0], sample_images[1], max_shift=-1))


def test_qgis_number_parameters_take_core_ranges(processing):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("stacksr:trainselfsupervised")
    steps = alg.parameterDefinition("STEPS")
    assert (steps.defaultValue(), steps.minimum(), steps.maximum()) == (P.STEPS.default, P.STEPS.minimum, P.STEPS.maximum)
    tile = QgsApplication.processingRegistry().algorithmById("stacksr:superresolve").parameterDefinition("TILE")
    assert (tile.defaultValue(), tile.minimum()) == (P.TILE.default, 0)


def test_two_outputs_of_one_job_that_are_the_same_file_are_refused_before_any_work(sample_images, sample_bank, tmp_path):
    """A report written over the model (or the bank, or the raster), directly or through a link, destroyed the main
    result and exited 0; a model written over the checkpoint it was initialised from, likewise."""
    import os

    from stacksr.core.errors import StackSRError
    from stacksr.core.jobs import run_estimate_kernels, run_superresolve, run_train_self_supervised
    from stacksr.core.io.stack_sources import sources_from_inputs

    src = sources_from_inputs(sample_images[:3])
    same = str(tmp_path / "same.out")
    with pytest.raises(StackSRError, match="the model and the report would be the same file"):
        run_train_self_supervised([src], TrainSettings(same, kernel_bank=sample_bank, scale=3, steps=1,
                                  report_html=same))
    with pytest.raises(StackSRError, match="the kernel bank and the report would be the same file"):
        run_estimate_kernels(src, KernelSettings(same, scale=3, report_html=same))
    link = str(tmp_path / "link.html")
    open(tmp_path / "sr.tif", "wb").close()  # a previous result, and a link to it
    os.symlink(str(tmp_path / "sr.tif"), link)
    with pytest.raises(StackSRError, match="the super-resolved raster and the report would be the same file"):
        run_superresolve(src, SuperResolveSettings(str(tmp_path / "sr.tif"), scale=3, method="bicubic",
                         report_html=link))
    with pytest.raises(StackSRError, match="the super-resolved raster and the uncertainty raster"):
        run_superresolve(src, SuperResolveSettings(str(tmp_path / "a.tif"), scale=3, method="piunet",
                         uncertainty_output=str(tmp_path / "a.tif")))
    # fine-tuning a checkpoint into the model whose checkpoint it is would overwrite the input
    import shutil

    from stacksr.core.learned.model_files import base_model_path

    init = str(tmp_path / "ft.pt.last")
    shutil.copyfile(base_model_path(3), init)
    with pytest.raises(StackSRError, match="the output '.*ft.pt.last' is one of the inputs"):
        run_train_self_supervised([src], TrainSettings(str(tmp_path / "ft.pt"), kernel_bank=sample_bank, scale=3,
                                  steps=1, init_model=init))
    assert sorted(os.listdir(tmp_path)) == ["ft.pt.last", "link.html", "sr.tif"] and os.path.getsize(tmp_path / "sr.tif") == 0


def test_a_few_values_no_sensor_produces_are_invalid_with_a_warning_and_never_wreck_the_raster(sample_images, tmp_path):
    """Two +-1e30 pixels per date and an undeclared float32 fill (-3.4028235e38, the usual one) made every PIUNet + TTF
    pixel exceed 1e5 and wrote +-inf. They are read as invalid, the log names the file and the value, and the
    result stays in the range of the data."""
    from osgeo import gdal

    from stacksr.core.progress import Monitor
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.whole_reads import read_raster
    from stacksr.core.io.stack_sources import sources_from_inputs

    paths = []
    for i, p in enumerate(sample_images[1:5]):
        arr = read_raster(p)[0]
        arr = arr.astype(np.float32)
        arr[5 + i, 7] = 1e30
        arr[40, 20 + i] = -1e30
        if i == 0:
            arr[50:, :10] = -3.4028235e38
        dst = str(tmp_path / f"f{i}.tif")
        ds = gdal.Translate(dst, p, outputType=gdal.GDT_Float32, noData="none")
        ds.GetRasterBand(1).WriteArray(arr)
        ds = None
        paths.append(dst)

    class Log(Monitor):
        lines: list = []

        def info(self, message):
            self.lines.append(message)

    log = Log()
    out = str(tmp_path / "sr.tif")
    run_superresolve(sources_from_inputs(paths), SuperResolveSettings(out, scale=3, method="piunet+ttf",
                     ttf_iterations=3), monitor=log)
    sr = read_raster(out)[0]
    assert np.isfinite(sr).all() and np.abs(sr).max() < 2e4  # reflectances x 1e4 stay reflectances
    warned = [line for line in log.lines if "values no sensor produces" in line]
    assert len(warned) == 4 and "'f0.tif'" in warned[0] and "-a_nodata" in warned[0]


def test_a_reference_without_valid_pixels_is_refused_and_an_empty_date_is_reported_as_empty(sample_images, tmp_path):
    from osgeo import gdal

    from stacksr.core.errors import StackSRError
    from stacksr.core.progress import Monitor
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.stack_sources import sources_from_inputs

    empty = str(tmp_path / "empty.tif")
    ds = gdal.Translate(empty, sample_images[2])
    band = ds.GetRasterBand(1)
    band.Fill(-9999)  # the files' declared nodata
    ds = None
    paths = sample_images[3:6] + [empty]
    with pytest.raises(StackSRError, match="the reference image 'empty.tif' has no valid pixel"):
        run_superresolve(sources_from_inputs(paths), SuperResolveSettings(str(tmp_path / "sr.tif"), scale=3,
                         method="bicubic", reference=3))
    assert not (tmp_path / "sr.tif").exists()

    class Log(Monitor):
        lines: list = []

        def info(self, message):
            self.lines.append(message)

    log = Log()
    summary = run_superresolve(sources_from_inputs(paths), SuperResolveSettings(str(tmp_path / "sr.tif"), scale=3,
                               method="bicubic"), monitor=log)
    assert summary["images_used"] == 3 and "empty.tif: no valid pixel (all nodata or masked): left out" in log.lines


def test_masks_that_mark_nothing_with_the_values_given_are_named_in_a_warning(sample_images, sample_masks, tmp_path):
    """Masks whose codes are not the mask values given (here: 99, which no Fmask pixel holds) silently masked
    nothing; the job now warns, naming the values the masks hold and the values given (not when some masks do mark
    pixels: a clear date's mask marks nothing)."""
    from stacksr.core.progress import Monitor
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.stack_sources import sources_from_inputs

    class Log(Monitor):
        lines: list = []

        def info(self, message):
            self.lines.append(message)

    log = Log()
    run_superresolve(sources_from_inputs(sample_images[:3], masks=sample_masks[:3]),
                     SuperResolveSettings(str(tmp_path / "sr.tif"), scale=3, method="bicubic",
                     invalid_mask_values=[99]), monitor=log)
    warned = [line for line in log.lines if "no mask marks any pixel invalid" in line]
    assert len(warned) == 1 and "(99)" in warned[0] and "--mask-invalid-values" in warned[0]
    log.lines.clear()
    # the Fmask codes: some dates have cloud or shadow, the clear dates' masks mark nothing, and that is no warning
    run_superresolve(sources_from_inputs(sample_images, masks=sample_masks),
                     SuperResolveSettings(str(tmp_path / "sr2.tif"), scale=3, method="bicubic"), monitor=log)
    assert not [line for line in log.lines if "no mask marks any pixel invalid" in line]


def test_inputs_named_the_gdal_way_are_opened_and_a_bad_one_is_refused_clearly(sample_images, tmp_path):
    """A /vsizip/ path (and any name GDAL opens that is not a plain file: subdatasets, /vsicurl/) was refused as
    'does not exist'; it is now read as GDAL reads it, and a GDAL name that does not open says so."""
    import zipfile

    from stacksr.core.errors import StackSRError
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.stack_sources import sources_from_inputs

    archive = str(tmp_path / "dates.zip")
    with zipfile.ZipFile(archive, "w") as z:
        for p in sample_images[:3]:
            z.write(p, os.path.basename(p))
    names = [f"/vsizip/{archive}/{os.path.basename(p)}" for p in sample_images[:3]]
    summary = run_superresolve(sources_from_inputs(names), SuperResolveSettings(str(tmp_path / "sr.tif"), scale=2,
                               method="bicubic"))
    assert summary["images_used"] == 3 and os.path.exists(tmp_path / "sr.tif")
    with pytest.raises(StackSRError, match="cannot be read as a raster"):
        run_superresolve(sources_from_inputs([f"/vsizip/{archive}/missing.tif", names[1]]),
                         SuperResolveSettings(str(tmp_path / "x.tif"), scale=2, method="bicubic"))
    assert not os.path.exists(tmp_path / "x.tif")


def _huge_dates(tmp_path, n=2, size=1_000_000) -> list[str]:
    """Georeferenced dates of ``size`` x ``size`` px that take no disk (sparse GeoTIFFs, never read here)."""
    from osgeo import gdal, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32613)
    paths = []
    for i in range(n):
        p = str(tmp_path / f"huge_{i}.tif")
        ds = gdal.GetDriverByName("GTiff").Create(p, size, size, 1, gdal.GDT_UInt16,
                                                   ["SPARSE_OK=TRUE", "TILED=YES", "BIGTIFF=YES"])
        ds.SetGeoTransform((500000, 30, 0, 4500000, 0, -30))
        ds.SetProjection(srs.ExportToWkt())
        ds = None
        paths.append(p)
    return paths


def test_outputs_larger_than_the_free_disk_space_are_refused_before_reading(tmp_path):
    """A job that would write a raster of terabytes started, read the whole stack for minutes and ended on a full
    disk. The outputs' size is checked against the free space before the first read (CLI, job and chain)."""
    from stacksr.core.jobs.chain_job import run_chain
    from stacksr.core.errors import StackSRError
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.stack_sources import sources_from_inputs

    dates = _huge_dates(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    res = _cli("sr", "--method", "bicubic", "--inputs", *dates, "--output", str(out / "sr.tif"), timeout=60)
    line = _one_line_error(res.returncode, res.stderr)
    assert "the outputs need up to 36.0 TB" in line and "free" in line
    with pytest.raises(StackSRError, match="the outputs need up to 72.0 TB"):  # the uncertainty raster counts too
        run_superresolve(sources_from_inputs(dates), SuperResolveSettings(str(out / "sr.tif"), scale=3,
                         method="piunet", uncertainty_output=str(out / "unc.tif")))
    with pytest.raises(StackSRError, match="the outputs need up to"):  # before the kernels and the training
        run_chain(sources_from_inputs(dates), ChainSettings(str(out / "sr.tif"), work_folder=str(out), scale=3))
    assert os.listdir(out) == []


def test_a_disk_that_fills_during_the_write_ends_in_one_line_and_leaves_nothing(sample_images, tmp_path):
    """A full disk (here a file-size limit, which fails the same write calls) ended in a GDAL traceback, exit 1.
    Now: one line naming the folder, exit 2, no file of the run, a previous output untouched."""
    import resource
    import signal

    previous = tmp_path / "sr.tif"
    previous.write_bytes(b"previous result")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    res = subprocess.run([sys.executable, "-m", "stacksr", "--quiet", "sr", "--method", "ibp", "--inputs",
                          *sample_images[:3], "--output", str(previous)], capture_output=True, text=True, env=ENV,
                         timeout=120, preexec_fn=small_files)
    line = _one_line_error(res.returncode, res.stderr)
    assert f"writing into '{tmp_path}' failed" in line and "disk full" in line
    assert os.listdir(tmp_path) == ["sr.tif"] and previous.read_bytes() == b"previous result"


# every file each job writes, as (keyword, derived from another output or None); "work" stands for the chain's folder
_JOB_OUTPUTS = {
    "sr": ["output", "uncertainty_output", "kernel_output", "report_html"],
    "kernels": ["bank_path", "report_html"],
    "train": ["output", "output.last", "report_html"],
    "chain": ["output", "uncertainty_output", "report_html", "work/kernels.npz", "work/piunet.pt", "work/piunet.pt.last"],
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=st.sampled_from(sorted(_JOB_OUTPUTS)), data=st.data())
def test_fuzz_two_outputs_of_a_job_that_are_one_file_are_refused_and_nothing_is_touched(
        sample_images, sample_bank, tmp_path_factory, job, data):
    """Any two files a job writes (its outputs, a model's .last checkpoint, the chain's bank and model), named
    the same way, through a relative path, a symbolic link or a hard link, are refused before any work, and
    no file in the folder changes."""
    from stacksr.core.jobs.chain_job import run_chain
    from stacksr.core.errors import StackSRError
    from stacksr.core.jobs import run_estimate_kernels, run_superresolve, run_train_self_supervised
    from stacksr.core.io.stack_sources import sources_from_inputs

    tmp = tmp_path_factory.mktemp("collide")
    names = _JOB_OUTPUTS[job]
    a, b = data.draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True), label="outputs")
    how = data.draw(st.sampled_from(["same", "relative", "symlink", "hardlink"]), label="how")
    named = [n for n in names if n != "output.last" and not n.startswith("work/")]
    if a not in named:
        a, b = b, a
    if a not in named or {a, b} == {"output", "output.last"}:
        return  # two derived files, or a model and its own .last: distinct by construction
    given = {n: str(tmp / f"{n}.tif") for n in named}
    target = given["output"] + ".last" if b == "output.last" else str(tmp / b[5:]) if b.startswith("work/") else given[b]
    (tmp / "previous").write_bytes(b"a previous result")
    os.replace(tmp / "previous", target)  # the file both names reach, as a previous run left it
    if how == "relative":
        given[a] = os.path.relpath(target)
    elif how == "symlink":
        given[a] = str(tmp / "alias.tif")
        os.symlink(target, given[a])
    elif how == "hardlink":
        given[a] = str(tmp / "hard.tif")
        os.link(target, given[a])
    else:
        given[a] = target
    before = {p.name: p.read_bytes() if p.is_file() else None for p in tmp.iterdir()}
    src = sources_from_inputs(sample_images[:3])
    with pytest.raises(StackSRError, match="same file|one of the inputs|must end in"):
        if job == "sr":
            run_superresolve(src, SuperResolveSettings(given["output"], scale=3, method="piunet+ttf",
                             uncertainty_output=given["uncertainty_output"], kernel_output=given["kernel_output"],
                             report_html=given["report_html"]))
        elif job == "kernels":
            run_estimate_kernels(src, KernelSettings(given["bank_path"], scale=3, report_html=given["report_html"]))
        elif job == "train":
            run_train_self_supervised([src], TrainSettings(given["output"], kernel_bank=sample_bank, scale=3, steps=1,
                                      report_html=given["report_html"]))
        else:
            run_chain(src, ChainSettings(given["output"], work_folder=str(tmp), scale=3,
                      uncertainty_output=given["uncertainty_output"], report_html=given["report_html"]))
    assert {p.name: p.read_bytes() if p.is_file() else None for p in tmp.iterdir()} == before


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 60), st.integers(0, 60),
                                 st.sampled_from([1e30, -1e30, 3.4028235e38, -3.4028235e38, 1e20, -5e24, float("inf"),
                                                  float("-inf"), float("nan")])), min_size=1, max_size=12),
       method=st.sampled_from(["ibp", "bicubic", "piunet"]))
def test_fuzz_extreme_values_anywhere_never_reach_the_output(sample_images, tmp_path_factory, values, method):
    """Random extreme values (beyond any sensor's range, infinities, NaN) at random pixels of random dates: the
    raster stays finite and in the data's range wherever it is not nodata."""
    from osgeo import gdal

    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.whole_reads import read_raster
    from stacksr.core.io.stack_sources import sources_from_inputs

    tmp = tmp_path_factory.mktemp("extreme")
    arrays = [read_raster(p)[0].astype(np.float32) for p in sample_images[:3]]
    for t, r, c, v in values:
        arrays[t][r % arrays[t].shape[0], c % arrays[t].shape[1]] = v
    paths = []
    for i, (p, arr) in enumerate(zip(sample_images, arrays)):
        dst = str(tmp / f"d{i}.tif")
        ds = gdal.Translate(dst, p, outputType=gdal.GDT_Float32, noData="none")
        ds.GetRasterBand(1).WriteArray(arr)
        ds = None
        paths.append(dst)
    out = str(tmp / "sr.tif")
    run_superresolve(sources_from_inputs(paths), SuperResolveSettings(out, scale=3, method=method))
    sr = read_raster(out)[0]
    good = sr[np.isfinite(sr)]
    assert good.size > 0.9 * sr.size and np.abs(good).max() < 2e4  # NaN is the nodata of a raster without one


def test_kernel_layers_under_a_regular_file_are_refused_before_estimation_and_no_bank_is_left(sample_images, tmp_path):
    """`kernels --layers` under a regular file failed after minutes of estimation and left the bank behind."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    for layers, message in ((blocker, "is a file; give a folder"), (blocker / "kernels", "its parent folder does not exist")):
        res = _cli("kernels", "--inputs", *sample_images[:3], "--output", str(tmp_path / "bank.npz"),
                   "--layers", str(layers))
        assert message in _one_line_error(res.returncode, res.stderr)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
