"""The learned path's safeguards: the TTF guard and the grid-texture measure, on real pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stacksr.core.degradation.operators import upsample_bicubic
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.metrics import grid_energy, grid_texture_ratio
from stacksr.core.learned.piunet import PIUNet, PIUNetConfig
from stacksr.core.learned.ttf import holdout_mask
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.learned.ttf import test_time_finetune as finetune  # aliased: pytest would collect test_*


@pytest.fixture(scope="module")
def flow():
    return load_fkp(default_fkp_path(3), 3)


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return PIUNet(PIUNetConfig(scale=3, features=16, blocks=2))


def test_grid_energy_flags_a_stride_three_pattern_on_a_real_image(l8_hr):
    truth = l8_hr[:177, :177].numpy()
    assert grid_texture_ratio(truth, truth, 3) == pytest.approx(1.0)
    rows, cols = np.meshgrid(np.arange(177), np.arange(177), indexing="ij")
    pattern = 0.05 * truth.std() * ((rows % 3 == 0).astype(np.float32) + (cols % 3 == 1))
    assert grid_texture_ratio(truth + pattern, truth, 3) > 1.5
    smooth = upsample_bicubic(torch.from_numpy(truth[1::3, 1::3].copy()), 3).numpy()
    assert grid_texture_ratio(smooth, truth, 3) < 1.0  # smoother than the truth: no texture added


def test_grid_energy_refuses_tiny_images_and_ignores_nodata(l8_hr):
    with pytest.raises(ValueError, match="too small"):
        grid_energy(np.zeros((5, 5)), 3)
    img = l8_hr[:90, :90].numpy().copy()
    img[10:20, 10:20] = np.nan
    assert np.isfinite(grid_energy(img, 3))


def test_holdout_mask_keeps_whole_blocks_and_at_least_one():
    g = torch.Generator().manual_seed(0)
    m = holdout_mask((64, 64), 8, 0.25, g)
    assert m.shape == (64, 64) and 0 < m.float().mean() < 0.6
    blocks = m.reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64)
    assert bool(((blocks.all(1)) | (~blocks).all(1)).all())  # each block all in or all out
    assert bool(holdout_mask((16, 16), 8, 0.0, g).any())


@pytest.mark.parametrize("guard", ["frames", "best", "final"])
def test_ttf_guard_never_returns_a_network_worse_than_the_untuned_one_on_its_check(guard, l8_stack, small_net, flow):
    """A learning rate far too high over-fits the reference: whatever the guard returns scores at
    most the untuned network's loss on the guard's check (the other frames, or held-out blocks)."""
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    cfg = TTFConfig(iterations=15, lr_net=5e-2, kernel_warmup=5, crop=0, guard=guard)
    tuned, kernel, res = finetune(small_net, flow, l8_stack.lr, valid, 0, cfg)
    assert len(res.losses) == 15 and len(res.check_losses) == 15
    assert 0 <= res.kept_iteration <= 15 and (guard == "best" or res.kept_iteration in (0, 15))
    assert res.kept_check <= res.baseline * (1 + (cfg.guard_tolerance if guard != "best" else 0))
    if 0 < res.kept_iteration < 15:  # the curve's entry i is the state after i steps... checked one step later
        assert res.kept_check == pytest.approx(res.check_losses[res.kept_iteration])
    assert kernel.shape == (15, 15) and abs(float(kernel.sum()) - 1) < 1e-4
    if res.reverted:
        for a, b in zip(tuned.state_dict().values(), small_net.state_dict().values()):
            assert torch.equal(a.cpu(), b)


def test_ttf_without_guard_keeps_the_last_iteration(l8_stack, small_net, flow):
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    _, _, res = finetune(small_net, flow, l8_stack.lr, valid, 0,
                                   TTFConfig(iterations=4, kernel_warmup=2, guard="off", crop=0))
    assert res.kept_iteration == 4 and all(v != v for v in res.check_losses)  # NaN: nothing held out


def test_ttf_fitting_the_stack_with_all_weight_on_the_reference_is_ttf_on_the_reference(l8_stack, small_net, flow):
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    common = dict(iterations=5, kernel_warmup=3, guard="off", crop=32, lr_net=1e-3)
    _, k_ref, ref = finetune(small_net, flow, l8_stack.lr, valid, 0, TTFConfig(fit="reference", **common))
    _, k_stack, stack = finetune(small_net, flow, l8_stack.lr, valid, 0,
                                 TTFConfig(fit="stack", reference_weight=1.0, **common))
    # the same optimisation up to float rounding (the kernels of all frames go through the flow as a batch)
    assert stack.losses == pytest.approx(ref.losses, rel=1e-4)
    assert torch.allclose(k_ref, k_stack, atol=1e-5)


@pytest.mark.slow  # 7 s: in `make test`, not in `make test-fast`
def test_ttf_fitting_the_stack_beats_ttf_on_the_reference_alone_on_a_real_image(l8_hr, l8_stack, flow):
    """Frames cut from one real image (known kernels and shifts): what the other frames know lifts
    the base model's TTF result above TTF on the reference alone, which barely moves it."""
    from stacksr.core.learned.inference import predict
    from stacksr.core.metrics import cpsnr
    from stacksr.core.learned.model_files import base_model_path, load_model

    net, _ = load_model(base_model_path(3), 3)
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)

    def score(model) -> float:
        sr = predict(model, l8_stack.lr, valid)[0].numpy()
        return cpsnr(sr, l8_stack.hr.numpy(), max_shift=3, data_range=65535.0).cpsnr

    scores = {"untuned": score(net)}
    for fit in ("reference", "stack"):
        scores[fit] = score(finetune(net, flow, l8_stack.lr, valid, 0, TTFConfig(fit=fit, guard="off"))[0])
    assert scores["stack"] > max(scores["reference"], scores["untuned"]) + 0.05, scores


def test_ttf_refuses_an_unknown_fit_and_a_reference_weight_out_of_range(l8_stack, small_net, flow):
    valid = torch.ones_like(l8_stack.lr, dtype=torch.bool)
    with pytest.raises(ValueError, match="fit must be one of"):
        finetune(small_net, flow, l8_stack.lr, valid, 0, TTFConfig(fit="all"))
    with pytest.raises(ValueError, match="reference_weight"):
        finetune(small_net, flow, l8_stack.lr, valid, 0, TTFConfig(reference_weight=0.0))


# --- the shipped base model --------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_base_models_load_weights_only_and_document_their_training(scale):
    from stacksr.core.learned.model_files import ModelFileError, base_model_path, load_model

    path = base_model_path(scale)
    assert path is not None and path.endswith(f"piunet_base_x{scale}.pt")
    payload = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and containers only
    net, _ = load_model(path, scale=scale)
    assert net.config.scale == scale and "optimizer" not in payload and "rng" not in payload
    doc = payload["extra"]
    for key in ("data", "command", "seed", "kernel_bank", "self_supervised", "steps", "cpu_seconds", "curve"):
        assert key in doc, key
    assert "landsat7_timeseries" in doc["data"] and "real_series" in doc["data"]
    # self-supervised, or (x2) then fine-tuned on real pairs that are not the benchmark's, and saying so
    assert doc["self_supervised"] is True or "Romania's west half" in doc["fine_tuning"]
    # the benchmarks' truths are named as never used
    assert "nothing of landsat8_pan, sentinel2_timeseries, sensor_pairs" in doc["data"]
    with pytest.raises(ModelFileError, match="is for scale"):
        load_model(path, scale={2: 3, 3: 4, 4: 2}[scale])


@pytest.mark.parametrize("scale", [2, 4])
def test_the_base_model_of_every_scale_super_resolves_a_real_stack(sample_images, scale):
    from stacksr.core.classic.baselines import mean_bicubic
    from stacksr.core.learned.inference import predict
    from stacksr.core.learned.model_files import base_model_path, load_model
    from stacksr.core.io.whole_reads import read_stack
    from stacksr.core.io.stack_sources import sources_from_inputs

    st = read_stack(sources_from_inputs(sample_images[1:6]))
    frames, valid = torch.from_numpy(st.data), torch.from_numpy(st.valid)
    sr = predict(load_model(base_model_path(scale), scale)[0], frames, valid)[0]
    assert sr.shape == (61 * scale, 61 * scale) and torch.isfinite(sr).all()
    # close to the frames' mean upsampled (the same scene), not a copy of it
    ref = mean_bicubic(frames, valid, scale)
    rel = float((sr - ref).abs().mean() / ref.std())
    assert 0.005 < rel < 0.3, rel


def test_superresolve_without_a_model_file_uses_the_shipped_base_model(processing, sample_images, tmp_path):
    from osgeo import gdal

    out = str(tmp_path / "sr.tif")
    processing.run("stacksr:superresolve", {"LAYERS": sample_images, "METHOD": 1, "TILE": 0, "OUTPUT": out})
    ds = gdal.Open(out)
    assert '"model": "piunet_base_x3.pt"' in ds.GetMetadataItem("STACKSR_PARAMETERS")
    assert np.isfinite(ds.ReadAsArray()).all()


def test_training_fine_tunes_the_base_model_at_a_lower_rate_unless_asked_to_start_from_scratch(
        processing, sample_images, sample_bank, tmp_path):
    from stacksr.core import params as P
    from stacksr.core.learned.model_files import base_model_path, load_model

    base, _ = load_model(base_model_path(3))
    runs = {}
    for name, extra in (("default", {}), ("scratch", {"FROM_BASE": False}), ("given", {"LEARNING_RATE": 1e-3})):
        out = str(tmp_path / f"{name}.pt")
        processing.run("stacksr:trainselfsupervised", {"LAYERS": sample_images, "KERNEL_BANK": sample_bank, "STEPS": 2,
                                                       "BATCH": 2, "OUTPUT_MODEL": out, **extra})
        runs[name] = load_model(out)
    assert runs["default"][0].config == base.config  # the base model's architecture, fine-tuned
    assert runs["scratch"][0].config.features == 42 and runs["scratch"][0].config.blocks == 16  # the published network
    rates = {name: payload["train"]["lr"] for name, (_, payload) in runs.items()}
    assert rates == {"default": P.TRAIN_LR_FINETUNE, "scratch": P.TRAIN_LR_SCRATCH, "given": 1e-3}
    assert P.TRAIN_LR_FINETUNE < P.TRAIN_LR_SCRATCH


@pytest.mark.slow
def test_cli_train_takes_a_model_to_fine_tune_or_starts_from_scratch(sample_images, sample_bank, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    from stacksr.core.learned.model_files import load_model

    first = str(tmp_path / "first.pt")
    cmd = [sys.executable, "-m", "stacksr", "--quiet", "train", "--inputs", *sample_images, "--kernel-bank", sample_bank,
           "--steps", "1", "--batch", "2"]
    env = {**__import__("os").environ, "PYTHONPATH": f"{ROOT}/.build/pkg"}
    subprocess.run(cmd + ["--from-scratch", "--output", first], check=True, env=env, capture_output=True)
    second = str(tmp_path / "second.pt")
    subprocess.run(cmd + ["--init-model", first, "--output", second], check=True, env=env, capture_output=True)
    assert load_model(second)[0].config == load_model(first)[0].config
    bad = subprocess.run(cmd + ["--init-model", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "x.pt")],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and not (tmp_path / "x.pt").exists()



def test_upsampler_phase_biases_leave_no_stride_pattern_and_detail_is_kept():
    """Unequal pixel-shuffle phases (what brief training leaves) would print a grid; the network
    brings every sub-pixel phase to the common mean, and leaves content-dependent detail alone."""
    import torch.nn.functional as F

    from stacksr.core.learned.piunet import _Pools, remove_phase_pattern

    torch.manual_seed(0)
    net = PIUNet(PIUNetConfig(scale=3, features=8, blocks=1)).eval()
    with torch.no_grad():
        net.upsample[0].bias.normal_(0, 5.0)
        frames = torch.randn(1, 4, 20, 20)
        sr, _ = net(frames)
        base = F.interpolate(frames.mean(1, keepdim=True), scale_factor=3, mode="bilinear", align_corners=False)[0, 0]
    corr = (sr[0] - base).reshape(20, 3, 20, 3).mean(dim=(0, 2))
    assert float((corr - corr.mean()).abs().max()) < 1e-4
    detail = torch.randn(1, 1, 30, 30)
    pattern = torch.arange(9.0).reshape(3, 3).repeat(10, 10)[None, None]
    cleaned = remove_phase_pattern(detail + pattern, 3, _Pools(1))
    expected = remove_phase_pattern(detail, 3, _Pools(1)) + pattern.mean()
    assert torch.allclose(cleaned, expected, atol=1e-5)


def test_unseen_grid_share_is_one_for_co_gridded_frames_and_small_for_spread_phases():
    from stacksr.core.learned.losses import unseen_grid_share

    assert unseen_grid_share(None, 3) == (1.0, 1.0)
    assert unseen_grid_share(torch.zeros(6, 2), 3) == pytest.approx((1.0, 1.0))
    spread = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]])  # the three sub-pixel phases of x3 on each axis
    assert max(unseen_grid_share(spread, 3)) < 1e-12
    whole_pixels = torch.tensor([[0.0, 0.0], [3.0, -6.0], [6.0, 3.0]])  # whole LR pixels: the same phase again
    assert unseen_grid_share(whole_pixels, 3) == pytest.approx((1.0, 1.0))


def test_grid_band_penalty_barely_sees_a_blurred_real_image_and_fully_sees_a_stride_pattern(l8_hr):
    from stacksr.core.degradation.operators import blur_downsample, gaussian_kernels
    from stacksr.core.learned.losses import grid_band_l1

    image = l8_hr[None] / 1000.0
    kernel = gaussian_kernels(torch.tensor([1.5]), torch.tensor([1.5]), torch.tensor([0.0]), 15, 3)[0]
    blurred = blur_downsample(image, kernel, 1)  # what a x3 sensor's blur leaves of the scene
    pattern = torch.tensor([1.0, -0.5, -0.5]).repeat(60)[None, None, :].expand(1, 180, 180) * float(blurred.std())
    assert float(grid_band_l1(blurred, 3)) < 0.02 * float(grid_band_l1(pattern, 3))
    assert float(grid_band_l1(image, 3)) > 10 * float(grid_band_l1(blurred, 3))  # the sharp image has that band
    assert float(grid_band_l1(pattern, 3, (1.0, 0.0))) < 1e-6  # the pattern runs along x only


def test_ttf_on_a_co_gridded_real_stack_adds_no_grid_texture(sample_images, sample_masks, flow):
    """The real Landsat series is co-gridded (one sampling phase): without the grid-band term the
    stack TTF of the demo multiplied the output's stride-3 energy by 12 (BENCHMARKS.md)."""
    from stacksr.core.learned.inference import predict
    from stacksr.core.learned.model_files import base_model_path, load_model
    from stacksr.core.io.stack_io import ImageSource
    from stacksr.core.io.whole_reads import read_stack

    st = read_stack([ImageSource(i, mask_path=m) for i, m in zip(sample_images, sample_masks)])
    x, v = torch.from_numpy(st.data), torch.from_numpy(st.valid)
    net, _ = load_model(base_model_path(3), 3)
    before = grid_energy(predict(net, x, v, reference=1)[0].numpy(), 3)
    tuned, _, res = finetune(net, flow, x, v, 1, TTFConfig(iterations=30, guard="off"))
    after = grid_energy(predict(tuned, x, v, reference=1)[0].numpy(), 3)
    assert res.losses[-1] < res.losses[0]  # it did finetune
    assert after < 1.3 * before
