"""Tiled PIUNet inference reproduces the whole-stack result (no seams, bounded memory)."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings, strategies as st

from stacksr.core.classic.baselines import IBP_CANDIDATES
from stacksr.core.learned.inference import predict, stack_context
from stacksr.core.learned.piunet import PIUNet, PIUNetConfig
from stacksr.core.io.stack_ops import standardize_stack
from stacksr.core.io.windows import TensorStack, stack_stats
from stacksr.core.job_settings import SuperResolveSettings


def _small_net(scale: int, blocks: int = 2, seed: int = 0, residual: str = "bilinear") -> PIUNet:
    torch.manual_seed(seed)
    net = PIUNet(PIUNetConfig(scale=scale, features=8, blocks=blocks, residual=residual)).eval()
    with torch.no_grad():  # random, non-trivial TERN filters and gates so that the pools matter
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def test_receptive_radius_bounds_the_reach_of_every_input_pixel():
    net = _small_net(3, blocks=3)
    R = net.receptive_radius()
    size = 2 * R + 11
    x = torch.randn(1, 4, size, size)
    context = net.context(x)
    x.requires_grad_(True)
    sr, log_scale = net(x, context)
    c = size // 2
    (sr[0, 3 * c + 1, 3 * c + 1] + log_scale[0, 3 * c + 1, 3 * c + 1]).backward()
    reach = x.grad[0].abs().sum(dim=0)
    rows, cols = torch.nonzero(reach, as_tuple=True)
    assert (rows - c).abs().max() <= R and (cols - c).abs().max() <= R
    assert (rows - c).abs().max() >= R - 2  # the bound is tight, so halos are not wasted


def test_given_context_replaces_the_pools_of_the_input():
    net = _small_net(2)
    x = torch.randn(1, 3, 20, 20)
    own, _ = net(x)
    assert torch.allclose(net(x, net.context(x))[0], own, atol=1e-5)
    other = net.context(torch.randn(1, 3, 20, 20) * 3)
    assert not torch.allclose(net(x, other)[0], own, atol=1e-3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.sampled_from([2, 3, 4]), h=st.integers(8, 44), w=st.integers(8, 44), t=st.integers(2, 4),
       tile=st.integers(4, 40), blocks=st.integers(1, 2), seed=st.integers(0, 1000),
       residual=st.sampled_from(["bilinear", "ibp"]))
def test_tiled_prediction_equals_untiled_for_any_size_scale_and_tile(scale, h, w, t, tile, blocks, seed, residual):
    net = _small_net(scale, blocks, seed, residual)
    g = torch.Generator().manual_seed(seed)
    frames = 1000 + 100 * torch.randn(t, h, w, generator=g)
    valid = torch.rand(t, h, w, generator=g) > 0.2
    whole, whole_ls = predict(net, frames, valid, tile=0)
    tiled, tiled_ls = predict(net, frames, valid, tile=tile)
    assert whole.shape == (h * scale, w * scale)
    # values ~1000 +- 100 DN: float rounding only; an IBP-residual network's base adds IBP's halo tolerance
    # (windows.IBP_HALO; on white noise with 2 frames, IBP's slowest case, up to 1e-3 of the spread)
    assert torch.allclose(tiled, whole, atol=2e-3 if residual == "bilinear" else 0.1, rtol=0)
    assert torch.allclose(tiled_ls, whole_ls, atol=1e-4, rtol=0)


def test_context_of_a_large_raster_comes_from_a_bounded_grid_of_crops():
    net = _small_net(2)
    xn = torch.randn(2, 300, 150)
    valid = torch.ones_like(xn, dtype=torch.bool)
    stats = stack_stats(TensorStack(xn, valid))
    context = stack_context(net, TensorStack(xn, valid), stats)
    assert len(context) == net.config.blocks + 2  # squeeze-excitation per block, TERN, the upsampler's phases
    assert context[0].shape == (1, 1, 8) and context[-2].shape == (1, 2, 8)
    assert context[-1].shape == (1, 1, 2 * net.config.scale ** 2)
    shifted = xn.clone()
    shifted[:, 70:110, 40:60] += 5  # between the crops: the context ignores it
    assert all(torch.equal(a, b) for a, b in zip(context, stack_context(net, TensorStack(shifted, valid), stats)))


def test_published_network_tiles_a_real_landsat8_stack_without_seams(l8_stack):
    """The 0.83M-parameter network on a real scene: tiles of 16 LR px (16 tiles) reproduce the
    whole-stack result everywhere, in particular along the tile edges."""
    net = PIUNet(PIUNetConfig(scale=3)).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    frames = l8_stack.lr[:, :40, :40]
    valid = torch.ones_like(frames, dtype=torch.bool)
    whole, _ = predict(net, frames, valid, tile=0)
    tiled, _ = predict(net, frames, valid, tile=16)
    _, _, std = standardize_stack(frames, valid)
    diff = (tiled - whole).abs()
    assert float(diff.max()) < 1e-4 * float(std)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["piunet+ttf", "piunet+ttf per tile", "ibp"])
def test_torchrun_with_two_processes_writes_the_same_raster_as_one(sample_images, sample_masks, tmp_path, method):
    """Each process predicts every other tile (TTF: rank 0's tuned network for all; per tile: each process
    finetunes its own tiles, the centre tile's kernel goes to rank 0); rank 0 writes."""
    import json
    import os
    import subprocess
    import sys

    from osgeo import gdal

    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"), OMP_NUM_THREADS="1")
    common = ["sr", "--inputs", *sample_images, "--masks", *sample_masks, "--method", method.split()[0], "--tile", "32",
              "--ttf-iterations", "5", *(["--ttf-per-tile"] if "per tile" in method else [])]
    outputs = {}
    for procs in (1, 2):
        out = str(tmp_path / f"sr{procs}.tif")
        unc = ["--uncertainty", str(tmp_path / f"std{procs}.tif"), "--kernel-output", str(tmp_path / f"k{procs}.tif")] \
            if method != "ibp" else []
        launcher = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc_per_node", "2"] \
            if procs == 2 else [sys.executable]
        res = subprocess.run([*launcher, "-m", "stacksr", "--quiet", *common, *unc, "--output", out],
                             capture_output=True, text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert len([line for line in res.stdout.splitlines() if line.startswith("{")]) == procs
        assert json.loads(res.stdout.splitlines()[-1])["output"] == out
        outputs[procs] = [out] + unc[1::2]
    for one, two in zip(outputs[1], outputs[2]):
        a, b = gdal.Open(one).ReadAsArray(), gdal.Open(two).ReadAsArray()
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), (one, np.abs(a - b).max(), np.abs(a).max())
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".stacksr-")]  # no temporary left by any process


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.sampled_from([2, 3, 4]), h=st.integers(8, 90), w=st.integers(8, 90), t=st.integers(2, 5),
       tile=st.integers(4, 32), seed=st.integers(0, 1000),
       method=st.sampled_from(["bicubic", "ibp", "ibp psf", "ibp bank"]))
@example(scale=4, h=86, w=32, t=2, tile=4, seed=0, method="ibp psf")  # a corner pixel seen by a sliver of one frame
def test_tiled_classic_methods_equal_untiled_for_any_size_scale_and_tile(scale, h, w, t, tile, seed, method):
    """Mean of bicubic and IBP (default PSF, a given PSF, one kernel per frame) through the tiling of the
    streaming job: bicubic to float rounding, IBP to its halo's tolerance (windows.IBP_HALO)."""
    from stacksr.core.classic.baselines import classic_tiles, default_psf
    from stacksr.core.degradation.operators import gaussian_kernels
    from stacksr.core.io.windows import ArraySink

    g = torch.Generator().manual_seed(seed)
    frames = 1000 + 100 * torch.randn(t, h, w, generator=g)
    valid = torch.rand(t, h, w, generator=g) > 0.2
    shifts = (torch.rand(t, 2, generator=g) - 0.5) * 2
    shifts[0] = 0
    k = default_psf(scale).shape[-1]
    kernels = {"ibp": default_psf(scale), "ibp psf": gaussian_kernels(0.4 * scale, 0.4 * scale, 0.0, k, scale),
               "ibp bank": torch.stack([gaussian_kernels(0.35 * scale + 0.1 * i, 0.5 * scale, 0.3 * i, k, scale)
                                        for i in range(t)]), "bicubic": None}[method]
    source = TensorStack(frames, valid)
    stats = stack_stats(source)
    out = {}
    for size in (0, tile):
        sink = ArraySink(1, h * scale, w * scale)
        classic_tiles(source, stats, method.split()[0], scale, shifts, sink, kernels, iterations=10, tile=size)
        out[size] = sink.arrays[0]
    # bicubic: float rounding of the sampling coordinates (a window's are relative to its size). IBP on white noise,
    # its slowest-decaying case, to its halo's tolerance: worst found 0.02 DN of a 100 DN spread in 75 draws (5 DN
    # before IBP's step floor stopped depending on the window's clear share). The real-stack test below, at float
    # rounding, is the one that catches too small an IBP halo (0.09 DN at 8 px, 5.7 at 4)
    assert torch.allclose(out[tile], out[0], atol=1e-2 if method == "bicubic" else 0.1, rtol=0)


@pytest.mark.parametrize("iterations", [40, max(IBP_CANDIDATES)])
def test_tiled_ibp_of_a_real_stack_equals_untiled_to_float_rounding(l8_stack, iterations):
    """The real Landsat 8 pan stack (x3, 9 frames; 40 iterations, and the most the automatic choice
    takes) in 16-px tiles."""
    from stacksr.core.classic.baselines import classic_tiles
    from stacksr.core.classic.registration import register_frames
    from stacksr.core.io.windows import ArraySink

    frames = l8_stack.lr
    valid = torch.ones_like(frames, dtype=torch.bool)
    valid[3, 10:30, 5:25] = False  # a cloud
    source = TensorStack(frames, valid)
    stats, shifts = stack_stats(source), register_frames(frames, valid, 0)
    out = []
    for size in (0, 16):
        sink = ArraySink(1, frames.shape[1] * 3, frames.shape[2] * 3)
        classic_tiles(source, stats, "ibp", 3, shifts, sink, iterations=iterations, tile=size)
        out.append(sink.arrays[0])
    assert float((out[1] - out[0]).abs().max()) < 2e-5 * float(frames.std())


@pytest.mark.parametrize("method", ["bicubic", "ibp", "piunet"])
def test_streaming_job_writes_the_same_raster_in_tiles_as_whole(sample_images, sample_masks, tmp_path, method):
    """The super-resolution job reads the real Landsat stack window by window and writes tile by tile:
    32-px tiles give the raster of one whole-stack tile (values and nodata)."""
    from stacksr.core.jobs.sr_job import run_superresolve
    from stacksr.core.io.whole_reads import read_raster
    from stacksr.core.io.stack_sources import sources_from_inputs

    out = {}
    for tile in (0, 32):
        path = str(tmp_path / f"sr{tile}.tif")
        run_superresolve(sources_from_inputs(sample_images, masks=sample_masks), SuperResolveSettings(path,
                         method=method, tile=tile))
        out[tile] = read_raster(path)
    (a, va, _, _), (b, vb, _, _) = out[0], out[32]
    assert np.array_equal(va, vb) and va.mean() > 0.9
    tol = {"bicubic": 1e-2, "ibp": 0.05, "piunet": 2e-2}[method]  # DN; values ~10^3
    assert np.abs(a[va] - b[vb]).max() < tol


@pytest.mark.slow  # 12 s: in `make test`, not in `make test-fast`
def test_tiled_robust_fusion_equals_untiled_on_a_real_stack_larger_than_its_halo(l8_stack):
    """IBP weighted by agreement with the reference (the job's IBP) in 64-px tiles of a 240-px stack. A
    pixel's weight depends on the frames within agreement.halo only (exactly); the tiles compute the
    weights on a wider window than IBP runs on and crop it back, adding nothing to IBP's own tiling
    tolerance (windows.IBP_HALO; measured alongside on the same stack)."""
    from stacksr.core.classic.agreement import agreement_weights, halo
    from stacksr.core.classic.baselines import classic_tiles
    from stacksr.core.io.windows import ArraySink

    lr = l8_stack.lr.clone()
    lr[4, 20:40, 20:45] = l8_stack.lr[0, 35:55, 5:30].flip(0)  # a field that changed in one date
    row = torch.cat([lr, lr.flip(-1)], dim=-1)
    frames = torch.cat([row, row.flip(-2)], dim=-2).repeat(1, 2, 2)  # the real frames mirrored to 240 x 240
    valid = torch.ones_like(frames, dtype=torch.bool)
    valid[2, 100:130, 70:90] = False  # a cloud
    source = TensorStack(frames, valid)
    stats, shifts = stack_stats(source), l8_stack.shifts
    mean = float(stats.frame_means[0])
    _, constants = agreement_weights(frames[:, 60:180, 60:180], valid[:, 60:180, 60:180], 0, shifts, mean)
    whole, _ = agreement_weights(frames, valid, 0, shifts, mean, constants)
    r = halo(shifts)
    part, _ = agreement_weights(frames[:, 110 - r:130 + r, 110 - r:130 + r], valid[:, 110 - r:130 + r, 110 - r:130 + r],
                                0, shifts, mean, constants)
    assert torch.equal(part[:, r:-r, r:-r], whole[:, 110:130, 110:130])
    gap = {}
    for agreement in (None, (0, constants)):
        out = []
        for size in (0, 64):
            sink = ArraySink(1, frames.shape[1] * 3, frames.shape[2] * 3)
            classic_tiles(source, stats, "ibp", 3, shifts, sink, iterations=10, tile=size, agreement=agreement)
            out.append(sink.arrays[0])
        gap[agreement is None] = float((out[1] - out[0]).abs().max())
    assert gap[True] < 2e-4 * float(frames.std()) and gap[False] <= 1.5 * gap[True]


def test_the_statistics_pass_honours_cancel_between_blocks():
    """The one pass over every pixel of the stack (minutes on a large raster) stops when the job is cancelled."""
    from stacksr.core.progress import Cancelled, Monitor
    from stacksr.core.io.windows import STATS_BLOCK, TensorStack, stack_stats

    class CancelAfterOneBlock(Monitor):
        def __init__(self):
            super().__init__()
            self.blocks = 0

        def progress(self, fraction, message=""):
            self.blocks += 1

        def is_cancelled(self):
            return self.blocks > 1

    frames = torch.ones(2, 3 * STATS_BLOCK, 8)
    mon = CancelAfterOneBlock()
    with pytest.raises(Cancelled):
        stack_stats(TensorStack(frames, torch.ones_like(frames, dtype=torch.bool)), mon)
    assert mon.blocks == 2
