"""DIP-FKP kernel estimation on stacks made from the real Landsat 8 pan crop."""
from dataclasses import replace

import torch

from stacksr.core.classic.baselines import default_psf
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.estimation.kernel_estimation import estimate_kernels, select_crop
from stacksr.core.estimation.estimation_config import JOINT_CONFIG
from stacksr.core.io.kernel_bank import fit_gaussian
from stacksr.core.degradation.kernels import kernel_errors
from stacksr.core.job_settings import KernelSettings

QUICK = replace(JOINT_CONFIG, iterations=120, warmup=40, crop=32)


def test_joint_estimation_gives_centred_normalised_kernels_close_to_truth(l8_stack):
    flow = load_fkp(default_fkp_path(3), 3)
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    res = estimate_kernels(l8_stack.lr[:4], valid[:4], flow, 3, "joint", QUICK, seed=0)
    assert res.kernels.shape == (4, 15, 15)
    assert torch.allclose(res.kernels.sum(dim=(1, 2)), torch.ones(4), atol=1e-5)
    errs = [kernel_errors(res.kernels[t], l8_stack.kernels[t], 3)["nl2"] for t in range(4)]
    assert max(errs) < 0.6, errs
    assert float((res.shifts - l8_stack.shifts[:4]).abs().max()) < 0.2
    for k in res.kernels:
        f = fit_gaussian(k, 3)
        assert abs(f.dx) < 0.5 and abs(f.dy) < 0.5


def test_joint_estimation_beats_the_default_psf_and_leaves_an_unregistrable_frame_at_it(l8_stack):
    flow = load_fkp(default_fkp_path(3), 3)
    frames = l8_stack.lr[:5].clone()
    frames[4] = frames[4].flip(0, 1)  # another scene for the shared image: it must not bend the others
    valid = torch.ones_like(frames, dtype=torch.bool)
    res = estimate_kernels(frames, valid, flow, 3, "joint", QUICK, seed=0)
    assert res.estimated.tolist() == [True, True, True, True, False]
    assert torch.allclose(res.kernels[4], default_psf(3))
    est = [kernel_errors(res.kernels[t], l8_stack.kernels[t], 3)["nl2"] for t in range(4)]
    default = [kernel_errors(default_psf(3), l8_stack.kernels[t], 3)["nl2"] for t in range(4)]
    assert sum(est) < 0.8 * sum(default), (est, default)


def test_estimation_is_deterministic_for_a_seed(l8_stack):
    flow = load_fkp(default_fkp_path(3), 3)
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    cfg = replace(QUICK, iterations=30, warmup=10)
    a = estimate_kernels(l8_stack.lr[:2], valid[:2], flow, 3, "per-image", cfg, seed=3)
    b = estimate_kernels(l8_stack.lr[:2], valid[:2], flow, 3, "per-image", cfg, seed=3)
    assert torch.equal(a.kernels, b.kernels)


def test_crop_selection_prefers_texture_and_avoids_invalid_pixels():
    frames = torch.zeros(2, 50, 50)
    frames[:, 5:20, 30:45] = torch.rand(2, 15, 15, generator=torch.Generator().manual_seed(0))
    frames[:, 30:45, 5:20] = torch.rand(2, 15, 15, generator=torch.Generator().manual_seed(1))
    valid = torch.ones_like(frames, dtype=torch.bool)
    valid[1, 30:45, 5:20] = False  # the second textured block is clouded in one frame
    r, c, n = select_crop(frames, valid, 16, 0.9)
    assert n == 16 and 4 <= r <= 6 and 29 <= c <= 31


def test_kernel_job_reports_an_image_of_another_scene_and_gives_it_the_default_psf(sample_images, tmp_path):
    import numpy as np
    from osgeo import gdal

    from stacksr.core.io.kernel_bank import KernelBank
    from stacksr.core.jobs.kernel_job import run_estimate_kernels
    from stacksr.core.io.stack_io import ImageSource

    src = gdal.Open(sample_images[0])  # kept open while its band is read (GDAL 3.6)
    arr = src.GetRasterBand(1).ReadAsArray()
    other = str(tmp_path / "other_scene.tif")
    dst = gdal.GetDriverByName("GTiff").Create(other, arr.shape[1], arr.shape[0], 1, gdal.GDT_Float32)
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    dst.GetRasterBand(1).WriteArray(np.ascontiguousarray(arr[::-1, ::-1]).astype(np.float32))
    dst = src = None
    bank_path, html = str(tmp_path / "k.npz"), str(tmp_path / "k.html")
    res = run_estimate_kernels([ImageSource(p) for p in [*sample_images[:4], other]], KernelSettings(bank_path,
                               scale=3, mode="joint", iterations=30, report_html=html))
    assert res["default_psf_images"] == ["other_scene.tif"]
    bank = KernelBank.load(bank_path)
    assert bank.meta["default_psf_images"] == ["other_scene.tif"]
    assert len(bank.meta["registration_quality"]) == 5 and min(bank.meta["registration_quality"][:4]) >= 0.9
    assert np.allclose(bank.kernels[4], default_psf(3).numpy(), atol=1e-6)
    with open(html, encoding="utf-8") as fh:
        assert "keep the default PSF" in fh.read()
