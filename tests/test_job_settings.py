"""One settings object per job (core.job_settings): built alike by the CLI, checked once, recorded whole."""
import dataclasses
import json

import pytest
import torch
from osgeo import gdal

from stacksr import cli
from stacksr.core import job_settings as J
from stacksr.core.errors import ParameterError
from stacksr.core.io.stack_io import ImageSource

CLASSES = {"sr": J.SuperResolveSettings, "classic": J.SuperResolveSettings, "kernels": J.KernelSettings,
           "train": J.TrainSettings, "chain": J.ChainSettings, "score": J.ScoreSettings}


def _subparser(command):
    return next(a for a in cli.build_parser()._actions if a.dest == "command").choices[command]


@pytest.mark.parametrize("command", sorted(CLASSES))
def test_every_cli_option_of_a_job_is_a_field_of_its_settings_and_every_field_an_option(command):
    stack_options = {"inputs", "multiband", "bands", "masks", "allow_ungeoreferenced", "help"}
    dests = {a.dest for a in _subparser(command)._actions} - stack_options
    shown = {f.name for f in dataclasses.fields(CLASSES[command]) if f.metadata.get("cli", "") is not None}
    assert dests == shown


def test_the_cli_fills_the_settings_object_from_its_options():
    args = cli.build_parser().parse_args(
        ["sr", "--inputs", "a.tif", "--output", "o.tif", "--no-register", "--model", "m.pt", "--tile", "64",
         "--mask-invalid-values", "1,255", "--ttf-fit", "reference"])
    s = cli._settings_from(J.SuperResolveSettings, args)
    assert s == J.SuperResolveSettings("o.tif", register=False, model_path="m.pt", tile=64, invalid_mask_values=(1, 255),
                                       ttf_fit="reference")
    classic = cli._settings_from(J.SuperResolveSettings, cli.build_parser().parse_args(
        ["classic", "--inputs", "a.tif", "--output", "o.tif"]))
    assert classic.method == "ibp"
    train = cli._settings_from(J.TrainSettings, cli.build_parser().parse_args(
        ["train", "--inputs", "a.tif", "--output", "m.pt", "--from-scratch"]))
    assert train.from_base is False and train.kernel_bank is None


def test_checked_fills_defaults_and_refuses_out_of_range_and_unknown_choices():
    s = J.SuperResolveSettings("o.tif", ttf_fit=None).checked()
    assert (s.tile, s.ttf_iterations, s.min_registration_quality, s.ttf_fit) == (224, 150, 0.9, "stack")
    assert s.iterations is None  # chosen per stack: stays automatic
    with pytest.raises(ParameterError, match="tile size"):
        J.SuperResolveSettings("o.tif", tile=5).checked()
    with pytest.raises(ParameterError, match="method must be one of"):
        J.SuperResolveSettings("o.tif", method="magic").checked()
    with pytest.raises(ParameterError, match="mode must be one of"):
        J.KernelSettings("k.npz", mode="guess").checked()


def test_record_is_json_ready_and_names_files_without_their_folders():
    rec = J.SuperResolveSettings("/data/out/sr.tif", kernel_bank="/data/k.npz", invalid_mask_values=(2, 255)).record()
    assert rec["output"] == "sr.tif" and rec["kernel_bank"] == "k.npz" and rec["invalid_mask_values"] == [2, 255]
    assert set(rec) == {f.name for f in dataclasses.fields(J.SuperResolveSettings)}
    json.dumps(rec)


def test_super_resolution_records_its_settings_whole_in_the_raster_and_the_report(sample_images, tmp_path):
    from stacksr.core.jobs.sr_job import run_superresolve

    out, report = str(tmp_path / "sr.tif"), str(tmp_path / "r.html")
    run_superresolve([ImageSource(p) for p in sample_images[:3]],
                     J.SuperResolveSettings(out, method="ibp", iterations=3, report_html=report))
    ds = gdal.Open(out)
    params = json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))
    ds = None
    assert {f.name for f in dataclasses.fields(J.SuperResolveSettings)} <= set(params)
    assert params["iterations"] == 3 and params["tile"] == 224 and params["report_html"] == "r.html"
    page = open(report, encoding="utf-8").read()
    assert "settings" in page and "min_registration_quality=0.9" in page


def test_kernel_estimation_and_training_record_their_settings_in_their_files(sample_images, tmp_path):
    from stacksr.core.io.kernel_bank import KernelBank
    from stacksr.core.jobs.kernel_job import run_estimate_kernels
    from stacksr.core.jobs.train_job import run_train_self_supervised

    sources = [ImageSource(p) for p in sample_images[:3]]
    bank = str(tmp_path / "k.npz")
    run_estimate_kernels(sources, J.KernelSettings(bank, iterations=4, crop=16, seed=7))
    rec = KernelBank.load(bank).meta["settings"]
    assert rec["iterations"] == 4 and rec["crop"] == 16 and rec["seed"] == 7 and rec["output"] == "k.npz"
    model = str(tmp_path / "m.pt")
    run_train_self_supervised([sources], J.TrainSettings(model, bank, steps=2, batch=2, patch=4))
    payload = torch.load(model, weights_only=True)
    assert payload["extra"]["job_settings"]["steps"] == 2 and payload["extra"]["job_settings"]["kernel_bank"] == "k.npz"


def test_training_refuses_settings_of_the_other_kind_before_reading(sample_images, tmp_path):
    from stacksr.core.errors import StackError
    from stacksr.core.jobs.train_job import run_train_self_supervised, run_train_supervised

    sources = [ImageSource(p) for p in sample_images[:3]]
    with pytest.raises(StackError, match="no kernel bank"):
        run_train_supervised(sources, J.TrainSettings(str(tmp_path / "m.pt"), "k.npz", hr=sample_images[0]))
    with pytest.raises(StackError, match="supervised job"):
        run_train_self_supervised([sources], J.TrainSettings(str(tmp_path / "m.pt"), hr=sample_images[0]))
    assert list(tmp_path.iterdir()) == []
