"""Kernel prior (FKP), Gaussian fit, kernel bank files, kernel layers and gallery."""
import math
import os
import pickle

import numpy as np
import pytest
import torch
from osgeo import gdal

from stacksr.core.degradation.operators import gaussian_kernels
from stacksr.core.degradation.fkp import (
    FKPConfig, FKPError, KernelFlow, default_fkp_path, load_fkp, project_to_sphere, save_fkp,
)
from stacksr.core.io.kernel_bank import KernelBank, KernelBankError, fit_gaussian
from stacksr.core.degradation.kernels import kernel_errors, write_gallery, write_kernel_layers
from stacksr.core.job_settings import KernelSettings


def test_fit_gaussian_recovers_sigmas_and_angle():
    k = gaussian_kernels(2.0, 1.1, math.radians(30), 15, 3)
    f = fit_gaussian(k, 3)
    assert f.sigma1 == pytest.approx(2.0, abs=0.03) and f.sigma2 == pytest.approx(1.1, abs=0.03)
    assert math.degrees(f.theta) == pytest.approx(30, abs=1)
    assert abs(f.dx) < 1e-6 and abs(f.dy) < 1e-6
    even = fit_gaussian(gaussian_kernels(1.5, 1.5, 0.0, 11, 2), 2)
    assert abs(even.dx) < 0.01 and abs(even.dy) < 0.01  # centred (up to truncation) per the even-scale convention


def test_kernel_errors_are_zero_for_identical_kernels():
    k = gaussian_kernels(2.0, 1.1, 0.3, 15, 3)
    e = kernel_errors(k, k, 3)
    assert e["nl2"] == 0 and e["sigma_abs"] < 1e-9 and e["angle_deg"] < 1e-6


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_priors_load_on_cpu_and_decode_plausible_kernels(scale):
    flow = load_fkp(default_fkp_path(scale), scale=scale, device="cpu")
    assert flow.config.size == 4 * scale + 3
    assert os.path.getsize(default_fkp_path(scale)) < 4_000_000
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        k = flow.kernels(project_to_sphere(torch.randn(16, flow.dim, generator=g)))
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(16), atol=1e-5) and (k >= 0).all()
    lo, hi = 0.35 * scale, 0.75 * scale
    for f in (fit_gaussian(x, scale) for x in k):
        assert lo - 0.3 < f.sigma2 <= f.sigma1 < hi + 0.3
        assert math.hypot(f.dx, f.dy) < 0.25  # centred


def test_shipped_prior_can_represent_a_gaussian_kernel():
    flow = load_fkp(default_fkp_path(3), 3)
    target = gaussian_kernels(1.9, 1.2, 1.0, 15, 3)
    z = project_to_sphere(torch.randn(1, flow.dim, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(200):
        loss = ((flow.kernels(z)[0] - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(project_to_sphere(z))
    assert kernel_errors(flow.kernels(z)[0].detach(), target, 3)["nl2"] < 0.03


def test_prior_of_wrong_scale_or_foreign_file_is_refused(tmp_path):
    with pytest.raises(FKPError, match="is for scale x3, not x2"):
        load_fkp(default_fkp_path(3), scale=2)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(FKPError, match="not a StackSR kernel prior"):
        load_fkp(str(junk))
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(FKPError, match="not a StackSR kernel prior"):
        load_fkp(str(tmp_path / "other.pt"))


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/stacksr_pwned",))


def test_crafted_pickle_prior_does_not_execute_code(tmp_path):
    if os.path.exists("/tmp/stacksr_pwned"):
        os.remove("/tmp/stacksr_pwned")
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": "stacksr-fkp", "payload": _Boom()}, fh)
    with pytest.raises(FKPError):
        load_fkp(str(evil))
    assert not os.path.exists("/tmp/stacksr_pwned")


def test_fkp_round_trip_save_load(tmp_path):
    flow = KernelFlow(FKPConfig(scale=2, size=11, hidden=16, couplings=2))
    flow(torch.randn(4, 121))  # initialise ActNorm
    save_fkp(flow, str(tmp_path / "p.pt"), {"seed": 1})
    again = load_fkp(str(tmp_path / "p.pt"), 2, 11)
    z = torch.randn(3, 121)
    with torch.no_grad():
        assert torch.allclose(again.kernels(z), flow.half().float().kernels(z), atol=1e-5)


def _bank(n=3, scale=3):
    ks = gaussian_kernels(torch.linspace(1.2, 2.0, n), torch.full((n,), 1.1), torch.linspace(0, 2, n), 4 * scale + 3, scale)
    return KernelBank(ks.numpy(), [f"img{i}.tif" for i in range(n)], scale, {"mode": "test"})


def test_kernel_bank_round_trip_and_checks(tmp_path):
    bank = _bank()
    path = bank.save(str(tmp_path / "bank.npz"))
    again = KernelBank.load(path, scale=3, size=15)
    assert again.names == bank.names and np.allclose(again.kernels, bank.kernels)
    assert again.digest() == bank.digest() and again.meta["mode"] == "test"
    with pytest.raises(KernelBankError, match="scale x3, not x4"):
        KernelBank.load(path, scale=4)
    with pytest.raises(KernelBankError, match="not 19x19"):
        KernelBank.load(path, size=19)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(KernelBankError, match="not a StackSR kernel bank"):
        KernelBank.load(str(junk))


def test_kernel_bank_with_pickled_object_is_refused(tmp_path):
    evil = tmp_path / "evil.npz"
    np.savez(evil, kernels=np.array([_Boom()], dtype=object), names=np.array(["a"]), scale=3, meta=np.array("{}"))
    with pytest.raises(KernelBankError):
        KernelBank.load(str(evil))
    assert not os.path.exists("/tmp/stacksr_pwned")


def test_kernel_layers_are_centred_float32_without_crs(tmp_path):
    bank = _bank()
    paths = write_kernel_layers(bank, str(tmp_path / "layers"))
    assert len(paths) == 3
    ds = gdal.Open(paths[0])
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32 and ds.GetProjection() == ""
    gt = ds.GetGeoTransform()
    # centre of the middle pixel (index 7) is at map (0, 0); pixel size 1/3 LR pixel
    assert gt[1] == pytest.approx(1 / 3) and gt[0] + 7.5 * gt[1] == pytest.approx(0) and gt[3] + 7.5 * gt[5] == pytest.approx(0)
    assert np.allclose(ds.ReadAsArray(), bank.kernels[0])
    assert ds.GetMetadataItem("STACKSR_KERNEL_SOURCE") == "img0.tif"
    ds = None


def test_gallery_html_and_png(tmp_path):
    bank = _bank(5)
    html_path = write_gallery(bank, str(tmp_path / "g.html"), str(tmp_path / "g.png"))
    text = open(html_path, encoding="utf-8").read()
    assert text.count("<figure>") == 5 and "&sigma;<sub>1</sub>" in text
    assert "kernel weight" in text and "linearGradient" in text  # one colour bar for the bank's one scale
    ds = gdal.Open(str(tmp_path / "g.png"))
    assert ds.RasterCount == 3 and ds.RasterXSize == 5 * (15 * 8 + 4)
    ds = None


def test_kernel_layers_of_a_stack_lie_over_its_centre_in_its_crs(sample_images, tmp_path):
    from stacksr.core.jobs.kernel_job import run_estimate_kernels
    from stacksr.core.io.stack_io import ImageSource

    res = run_estimate_kernels([ImageSource(p) for p in sample_images[:2]], KernelSettings(str(tmp_path / "k.npz"),
                               scale=3, mode="joint", iterations=2, layers_folder=str(tmp_path / "layers")))
    src, ds = gdal.Open(sample_images[0]), gdal.Open(res["layers"][0])
    sg, kg = src.GetGeoTransform(), ds.GetGeoTransform()
    assert ds.GetSpatialRef().IsSame(src.GetSpatialRef())
    assert kg[1] == pytest.approx(sg[1] / 3) and kg[5] == pytest.approx(sg[5] / 3)
    image_centre = (sg[0] + src.RasterXSize / 2 * sg[1], sg[3] + src.RasterYSize / 2 * sg[5])
    kernel_centre = (kg[0] + 7.5 * kg[1], kg[3] + 7.5 * kg[5])  # the middle of pixel 7 of a 15 x 15 kernel at x3
    assert kernel_centre == pytest.approx(image_centre)
    src = ds = None


def test_kernels_of_a_bank_share_one_colour_scale():
    from stacksr.core.io.kernel_bank import colorize_kernel

    sharp, wide = np.zeros((5, 5)), np.full((5, 5), 0.04)
    sharp[2, 2] = 1.0
    peak = 1.0
    # the wide kernel's weight is 4 % of the bank's peak: near the ramp's dark end, not its bright end
    assert colorize_kernel(wide, peak)[2, 2].sum() < colorize_kernel(wide)[2, 2].sum()
    assert (colorize_kernel(sharp, peak)[2, 2] == colorize_kernel(sharp)[2, 2]).all()


def test_gallery_captions_keep_whole_product_names_wrapped():
    from stacksr.core.io.kernel_bank import GaussianFit
    from stacksr.core.degradation.kernels import fit_caption

    caption = fit_caption("LT50350322009240PAC02_b4.tif", GaussianFit(1.0, 1.0, 0.0, 0.0, 0.0))
    assert caption.startswith("LT50350322009240<br/>PAC02_b4<br/>")  # the acquisition date (2009240) whole


def test_chart_legend_lies_under_the_plot_never_over_the_curves():
    import re

    from stacksr.core.io.report import line_chart

    svg = line_chart({"a": [(0, 1.0), (1, 2.0)], "b": [(0, 2.0), (1, 1.0)]}, "step", "loss")
    box = re.search(r'<rect x="(\d+)" y="(\d+)" width="[\d.]+" height="([\d.]+)"', svg)
    bottom = float(box.group(2)) + float(box.group(3))
    legend_y = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" fill=', svg)]
    assert len(legend_y) == 2 and min(legend_y) > bottom + 20
