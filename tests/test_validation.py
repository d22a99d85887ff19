"""Held-out validation of whole methods and the automatic method choice (issue 30)."""
import json
import math

import numpy as np
import pytest
import torch
from osgeo import gdal

from stacksr.core.baselines import default_psf
from stacksr.core.method_choice import LEARNED_MARGIN_DB, Setup, choose_method, pick
from stacksr.core.metrics import cpsnr
from stacksr.core.registration import register_stack
from stacksr.core.validation import (EDGE, REFERENCE_BASELINE, MethodScore, ValidationResult, heldout_errors,
                                     holdout_blocks, quality_line)


def test_holdout_leaves_the_reference_and_the_edges_whole_and_hides_a_quarter_of_the_other_frames():
    valid = torch.ones(5, 64, 64, dtype=torch.bool)
    hold = holdout_blocks(valid, ref=2, seed=0)
    assert not hold[2].any()
    assert not hold[:, :EDGE].any() and not hold[:, :, -EDGE:].any()
    share = hold[[0, 1, 3, 4]].float().mean()
    assert 0.12 < float(share) < 0.35
    # invalid pixels are never held out (there is nothing to compare with)
    valid[0, 10:30, 10:30] = False
    assert not (holdout_blocks(valid, 2, 0) & ~valid).any()


def test_the_truth_explains_held_out_pixels_better_than_a_blurred_guess(l8_stack):
    st = l8_stack
    hold = holdout_blocks(torch.ones_like(st.lr, dtype=torch.bool), 0)
    good = heldout_errors(st.hr, st.lr, hold, 3, st.shifts, st.kernels)
    blurred = torch.nn.functional.avg_pool2d(st.hr[None, None], 7, 1, 3)[0, 0]
    bad = heldout_errors(blurred, st.lr, hold, 3, st.shifts, st.kernels)
    assert [t for t, _, _ in good] == list(range(1, st.lr.shape[0]))
    assert sum(e for _, e, _ in good) < 0.5 * sum(e for _, e, _ in bad)


def test_on_frames_of_one_image_validation_ranks_ibp_first_as_the_truth_does(l8_stack):
    """Frames cut from one image (known best: IBP, by several dB): the held-out ranking agrees with the truth."""
    st = l8_stack
    valid = torch.ones_like(st.lr, dtype=torch.bool)
    shifts = register_stack(st.lr, valid, 0).shifts
    setup = Setup(3, 0, shifts, default_psf(3), 40)
    res = choose_method(setup, st.lr, valid, default_psf(3))
    assert [s.method for s in res.scores][0] == "ibp" and pick(res) == "ibp"
    assert res.score(REFERENCE_BASELINE).gain_db == 0.0 and res.score("ibp").gain_db > 3.0
    from stacksr.core.method_choice import runners

    truth = {m: cpsnr(run(st.lr, valid).numpy(), st.hr.numpy(), data_range=65535.0).cpsnr
             for m, run in runners(setup).items()}
    assert max(truth, key=truth.get) == "ibp"
    # the validated gains order the methods as their true gains do
    order = sorted(truth, key=truth.get)
    assert sorted(truth, key=lambda m: res.score(m).gain_db) == order


def test_a_learned_path_far_behind_ibp_before_ttf_is_not_fine_tuned_to_be_validated(l8_stack):
    """Frames of one image, an untrained network: it validates far below IBP, beyond what TTF ever raised a score
    (TTF_RAISE_DB), so auto does not spend a TTF on it and says so."""
    from stacksr.core.fkp import default_fkp_path, load_fkp
    from stacksr.core.method_choice import TTF_RAISE_DB
    from stacksr.core.piunet import PIUNet, PIUNetConfig
    from stacksr.core.ttf import TTFConfig

    st = l8_stack
    valid = torch.ones_like(st.lr, dtype=torch.bool)
    shifts = register_stack(st.lr, valid, 0).shifts
    torch.manual_seed(0)
    net = PIUNet(PIUNetConfig(scale=3, features=8, blocks=1)).eval()
    setup = Setup(3, 0, shifts, default_psf(3), 40, net=net, flow=load_fkp(default_fkp_path(3), 3), ttf=TTFConfig())
    res = choose_method(setup, st.lr, valid, default_psf(3))
    behind = 20 * math.log10(res.score("ibp").rmse / res.score("piunet").rmse)
    assert behind + TTF_RAISE_DB < LEARNED_MARGIN_DB
    assert res.score("piunet+ttf") is None and pick(res) == "ibp"
    assert any(n.startswith("piunet+ttf not validated: before TTF the network predicts") for n in res.notes)


def _result(**rmse_by_method) -> ValidationResult:
    scores = [MethodScore(m, r, [r * f for f in (1.0, 1.1, 0.9)], 0.0) for m, r in rmse_by_method.items()]
    return ValidationResult(sorted(scores, key=lambda s: s.rmse), 3, 100)


def test_auto_takes_the_learned_path_only_when_it_validates_clearly_better_than_ibp():
    margin = 10 ** (-LEARNED_MARGIN_DB / 20)
    assert pick(_result(**{"ibp": 1.0, "piunet+ttf": 0.99, "bicubic-ref": 0.8})) == "ibp"
    assert pick(_result(**{"ibp": 1.0, "piunet+ttf": margin * 0.98, "bicubic-ref": 1.2})) == "piunet+ttf"
    assert pick(_result(**{"ibp": 1.0, "ibp-bank": 0.9, "bicubic": 0.95})) == "ibp-bank"
    assert pick(None) == "ibp"  # one image: IBP deconvolves it, nothing to validate
    # the untuned network only screens the TTF: when PIUNet + TTF was validated, it is the learned path
    assert pick(_result(**{"ibp": 1.0, "piunet": margin * 0.9, "piunet+ttf": 0.99})) == "ibp"


def test_quality_line_names_the_method_its_error_and_gain():
    summary = {"method": "ibp", "validation": {"frames_scored": 7, "heldout_pixels": 500, "methods": {
        "ibp": {"rmse": 12.5, "gain_db": 1.234, "gain_spread_db": 0.5}}}}
    assert quality_line(summary) == ("ibp: held-out RMS error 12.5, +1.23 dB (+- 0.50) over the reference image "
                                     "upsampled alone (500 held-out pixels of 7 images)")
    assert "no quality estimate" in quality_line({"method": "ibp", "validation": None})


def test_auto_is_the_default_and_records_its_choice_and_every_methods_validation(sample_images, sample_masks, tmp_path):
    from stacksr.core.sr_job import run_superresolve
    from stacksr.core.stack_io import sources_from_inputs

    out, report = str(tmp_path / "sr.tif"), str(tmp_path / "report.html")
    summary = run_superresolve(sources_from_inputs(sample_images, masks=sample_masks), out, 3, report_html=report,
                               ttf_iterations=3)
    assert summary["requested_method"] == "auto" and summary["method"] in ("ibp", "piunet+ttf")
    methods = summary["validation"]["methods"]
    # the base model competes at x3: untuned, then with TTF (validated here: untuned it comes close to IBP)
    assert set(methods) == {"bicubic-ref", "bicubic", "ibp", "piunet", "piunet+ttf"}
    assert summary["validation"]["chosen"] == summary["method"]
    assert any(n.startswith(f"auto chose {summary['method']}: ") for n in summary["validation"]["notes"])
    ds = gdal.Open(out)
    meta = json.loads(ds.GetMetadataItem("STACKSR_VALIDATION"))
    assert ds.GetMetadataItem("STACKSR_METHOD") == summary["method"] and meta == json.loads(json.dumps(summary["validation"]))
    assert all(math.isfinite(m["rmse"]) and len(m["frame_rmse"]) == meta["frames_scored"] for m in meta["methods"].values())
    assert np.isfinite(ds.ReadAsArray()).all()
    ds = None
    text = open(report, encoding="utf-8").read()
    assert "quality estimate (held-out validation)" in text and "(used)" in text


def test_a_chosen_method_also_gets_its_quality_estimate(sample_images, sample_masks, tmp_path):
    from stacksr.core.sr_job import run_superresolve
    from stacksr.core.stack_io import sources_from_inputs

    summary = run_superresolve(sources_from_inputs(sample_images, masks=sample_masks), str(tmp_path / "sr.tif"), 3,
                               method="bicubic-ref")
    assert summary["method"] == "bicubic-ref" and set(summary["validation"]["methods"]) == {"bicubic-ref"}
    summary = run_superresolve(sources_from_inputs(sample_images[:2]),
                               str(tmp_path / "two.tif"), 3, method="bicubic")
    assert set(summary["validation"]["methods"]) == {"bicubic-ref", "bicubic"}


@pytest.mark.parametrize("scale", [2, 4])
def test_auto_at_x2_and_x4_lets_the_base_model_of_that_scale_compete_where_one_ships(sample_images, tmp_path, scale):
    from stacksr.core.model_files import base_model_path
    from stacksr.core.sr_job import run_superresolve
    from stacksr.core.stack_io import sources_from_inputs

    summary = run_superresolve(sources_from_inputs(sample_images[:4]), str(tmp_path / "sr.tif"), scale)
    methods, notes = set(summary["validation"]["methods"]), summary["validation"]["notes"]
    assert {"bicubic-ref", "bicubic", "ibp"} <= methods
    if base_model_path(scale):  # untuned always; with TTF unless the screening says it cannot win
        assert "piunet" in methods
        assert "piunet+ttf" in methods or any(n.startswith("piunet+ttf not validated") for n in notes)


def test_an_outlier_first_date_is_not_taken_as_the_reference_when_the_dates_are_equally_clear(sample_images, tmp_path):
    """No masks: every date is equally clear. The first date shows other land (a real date turned upside down);
    taking it as the reference would leave every other date out as other land."""
    from stacksr.core.registration import typical_reference
    from stacksr.core.sr_job import run_superresolve
    from stacksr.core.stack_io import read_raster, sources_from_inputs

    arr, _, _, _ = read_raster(sample_images[1])
    ds = gdal.Open(sample_images[1])
    outlier = str(tmp_path / "outlier.tif")
    gdal.GetDriverByName("GTiff").CreateCopy(outlier, ds)
    ds = None
    out_ds = gdal.Open(outlier, gdal.GA_Update)
    out_ds.GetRasterBand(1).WriteArray(np.ascontiguousarray(arr[::-1]))
    out_ds = None
    paths = [outlier] + sample_images[2:7]
    frames = torch.stack([torch.from_numpy(read_raster(p)[0].astype(np.float32)) for p in paths])
    ref, corr = typical_reference([1.0] * len(paths), lambda: (frames, torch.ones_like(frames, dtype=torch.bool)))
    assert ref != 0 and corr[0] == min(corr)
    summary = run_superresolve(sources_from_inputs(paths), str(tmp_path / "sr.tif"), 3, method="bicubic")
    assert summary["reference"] != "outlier.tif" and summary["images_used"] == len(paths) - 1
