"""DIP-FKP blur-kernel estimation, per image (as in the paper) or jointly over a stack.

Per image: a DIP generator makes an HR image, the FKP flow makes a kernel from a
latent ``z`` kept on the sphere of radius sqrt(dim); both are optimised so that
``blur_downsample(image, kernel)`` matches the LR image over valid pixels. For the
first ``warmup`` iterations only the image moves (the kernel stays at its random
start), so that ``z`` does not chase an image that is still noise.

Joint (beyond the paper): the frames see the same scene, so one generator explains
every frame through its own kernel latent, sub-pixel shift (initialised by
registration) and radiometric gain/bias (dates differ in illumination). One
generator pass per iteration serves all frames. Real dates also differ where the
land changed: frames that do not register (the job's registration-quality rule)
stay out of the fit and keep the default PSF, and the data term is a Cauchy loss,
so pixels where a kept frame disagrees with the shared image lose weight instead
of widening that frame's kernel.

Either mode ends with :mod:`kernel_calibration`: the common blur blind estimation
cannot tell is set by the prior.

Estimation runs on a crop (the kernel is global): the window with the most
texture among those with enough valid pixels.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from ..adam import Adam
from ..classic.baselines import default_psf
from ..convention import check_scale
from ..degradation.operators import blur_downsample, shift_images
from ..degradation.dip import SkipNet, dip_noise
from ..degradation.fkp import KernelFlow, project_to_sphere
from .estimation_config import EstimationConfig, EstimationResult, default_config
from .kernel_calibration import calibrate_kernels
from ..progress import Monitor, ensure_monitor
from ..params import REGISTRATION_QUALITY
from ..classic.registration import register_stack
from ..shapes import check_shape


def unit_range_frames(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Map valid values into about [0.1, 0.9] (robust 0.5/99.5 % percentiles of all frames)."""
    vals = frames[valid]
    if vals.numel() == 0:
        raise ValueError("no valid pixel to estimate a kernel from")
    if vals.numel() > 200_000:
        vals = vals[torch.randperm(vals.numel(), generator=torch.Generator().manual_seed(0))[:200_000]]
    lo, hi = torch.quantile(vals.double(), torch.tensor([0.005, 0.995], dtype=torch.float64))
    span = float(hi - lo) if float(hi - lo) > 0 else 1.0
    return ((frames - float(lo)) / span * 0.8 + 0.1).clamp(-0.5, 1.5)


def select_crop(frames: torch.Tensor, valid: torch.Tensor, size: int, min_valid: float) -> tuple[int, int, int]:
    """(row, col, size) of the most textured window with enough valid pixels in every frame."""
    T, H, W = frames.shape
    if size <= 0 or size >= min(H, W):
        return 0, 0, min(H, W) if size > 0 else 0
    gy = F.pad((frames[:, 1:] - frames[:, :-1]).abs(), (0, 0, 0, 1))
    gx = F.pad((frames[:, :, 1:] - frames[:, :, :-1]).abs(), (0, 1, 0, 0))
    grad = ((gy + gx) * valid).sum(0)
    box = torch.ones(1, 1, size, size, dtype=grad.dtype, device=grad.device) / (size * size)
    tex = F.conv2d(grad[None, None], box)[0, 0]
    vmin = F.conv2d(valid.float()[:, None], box)[:, 0].amin(0)  # worst frame's valid fraction
    score = torch.where(vmin >= min_valid, tex, torch.full_like(tex, -1.0))
    idx = int(score.argmax())
    r, c = divmod(idx, score.shape[1])
    return r, c, size


def _loss_mask(valid: torch.Tensor, border: int) -> torch.Tensor:
    m = valid.float().clone()
    if border > 0:
        m[..., :border, :] = 0
        m[..., -border:, :] = 0
        m[..., :, :border] = 0
        m[..., :, -border:] = 0
    return m


def _generate(net: SkipNet, noise: torch.Tensor, bf16: bool) -> torch.Tensor:
    if not bf16:
        return net(noise)
    with torch.autocast(device_type=noise.device.type, dtype=torch.bfloat16):
        return net(noise).float()


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def _cauchy_weights(residual: torch.Tensor, mask: torch.Tensor, c: float) -> torch.Tensor:
    """IRLS weights ``(T, h, w)`` of a Cauchy loss with constant ``c`` robust standard deviations of
    each frame's masked residual; all ones for ``c <= 0``. Detached: weighted least squares with
    them has the Cauchy loss's gradient."""
    if c <= 0:
        return torch.ones_like(residual)
    with torch.no_grad():
        r = residual.abs()
        mad = torch.where(mask > 0, r, torch.nan).flatten(1).nanmedian(dim=1).values
        sd = (1.4826 * torch.nan_to_num(mad, nan=1.0)).clamp(min=1e-6)
        return 1.0 / (1.0 + (r / (c * sd[:, None, None])) ** 2)


def _dip_setup(kernels: int, h: int, w: int, flow: KernelFlow, scale: int, config: EstimationConfig,
               generator: torch.Generator, device: torch.device):
    """A seeded DIP generator, its fixed HR-size noise input and ``kernels`` latents on the sphere."""
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    net = SkipNet(config.dip).to(device)
    noise = dip_noise(config.dip.input_channels, h * scale, w * scale, generator).to(device)
    z = project_to_sphere(torch.randn(kernels, flow.dim, generator=generator)).to(device).requires_grad_(True)
    return net, noise, z


def estimate_kernel_single(
    lr: torch.Tensor,
    valid: torch.Tensor,
    flow: KernelFlow,
    scale: int,
    config: EstimationConfig,
    generator: torch.Generator,
    device: torch.device,
    monitor: Monitor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """DIP-FKP for one normalised LR image ``(h, w)``: returns (kernel, latent, loss curve)."""
    mon = ensure_monitor(monitor)
    h, w = lr.shape
    size = flow.config.size
    net, noise, z = _dip_setup(1, h, w, flow, scale, config, generator, device)
    opt_img = Adam(net.parameters(), lr=config.lr_image)
    opt_z = Adam([z], lr=config.lr_kernel)
    y, m = lr.to(device)[None], _loss_mask(valid.to(device)[None], math.ceil((size // 2) / scale))
    losses = []
    for it in range(config.iterations):
        mon.check()
        kernel_moves = it >= config.warmup
        k = flow.kernels(z if kernel_moves else z.detach())
        loss = _masked_mse(blur_downsample(_generate(net, noise, config.bf16)[0], k[0], scale), y, m)
        opt_img.zero_grad(set_to_none=True)
        opt_z.zero_grad(set_to_none=True)
        loss.backward()
        opt_img.step()
        if kernel_moves:
            opt_z.step()
            with torch.no_grad():
                z.copy_(project_to_sphere(z))
        losses.append(float(loss.detach()))
        if it % 10 == 0 or it == config.iterations - 1:
            mon.progress((it + 1) / config.iterations, f"DIP-FKP iteration {it + 1}/{config.iterations}")
    with torch.no_grad():
        return flow.kernels(z)[0].cpu(), z[0].detach().cpu(), losses


def estimate_kernels_joint(
    frames: torch.Tensor,
    valid: torch.Tensor,
    shifts: torch.Tensor,
    flow: KernelFlow,
    scale: int,
    config: EstimationConfig,
    generator: torch.Generator,
    device: torch.device,
    monitor: Monitor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
    """One shared DIP image explains all frames with per-frame kernel, shift, gain and bias."""
    mon = ensure_monitor(monitor)
    T, h, w = frames.shape
    size = flow.config.size
    net, noise, z = _dip_setup(T, h, w, flow, scale, config, generator, device)
    d = (shifts.float() * scale).to(device).requires_grad_(True)  # HR pixels
    gain = torch.ones(T, 1, 1, device=device, requires_grad=True)
    bias = torch.zeros(T, 1, 1, device=device, requires_grad=True)
    opt_img = Adam(net.parameters(), lr=config.lr_image)
    opt_k = Adam([z], lr=config.lr_kernel)
    opt_geo = Adam([{"params": [d], "lr": 1e-2}, {"params": [gain, bias], "lr": 1e-3}])
    y = frames.to(device)
    m = _loss_mask(valid.to(device), math.ceil((size // 2) / scale) + 1)
    losses = []
    for it in range(config.iterations):
        mon.check()
        kernel_moves = it >= config.warmup
        k = flow.kernels(z if kernel_moves else z.detach())
        hr = _generate(net, noise, config.bf16)[0, 0]
        moved = shift_images(hr.expand(T, -1, -1), d)
        pred = gain * blur_downsample(moved, k, scale) + bias
        loss = _masked_mse(pred, y, m * _cauchy_weights(pred - y, m, config.robust) if kernel_moves else m)
        for o in (opt_img, opt_k, opt_geo):
            o.zero_grad(set_to_none=True)
        loss.backward()
        opt_img.step()
        opt_geo.step()
        if kernel_moves:
            opt_k.step()
            with torch.no_grad():
                z.copy_(project_to_sphere(z))
        with torch.no_grad():
            d[0] = 0.0  # frame 0 anchors the HR grid
        losses.append(float(loss.detach()))
        if it % 10 == 0 or it == config.iterations - 1:
            mon.progress((it + 1) / config.iterations, f"joint DIP-FKP iteration {it + 1}/{config.iterations}")
    with torch.no_grad():
        return flow.kernels(z).cpu(), z.detach().cpu(), (d / scale).detach().cpu(), losses


def estimate_kernels(
    frames: torch.Tensor,
    valid: torch.Tensor,
    flow: KernelFlow,
    scale: int,
    mode: str = "per-image",
    config: EstimationConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    monitor: Monitor | None = None,
    min_quality: float = REGISTRATION_QUALITY.default,
) -> EstimationResult:
    """Kernels of every frame of a stack ``frames`` ``(T, h, w)`` (raw values; normalised here) with
    validity ``valid`` (bool, same shape); the result's ``kernels`` are ``(T, K, K)``, ``K`` the prior's size,
    calibrated (:mod:`kernel_calibration`). Joint mode registers the frames to the most valid one and
    fits the shared image to those of registration quality ``min_quality`` or more; the others keep
    the default PSF (``estimated`` False)."""
    check_shape("frames", frames, "T, h, w")
    check_shape("valid", valid, "T, h, w", like=frames)
    mon = ensure_monitor(monitor)
    scale = check_scale(scale)
    if flow.config.scale != scale:
        raise ValueError(f"the kernel prior is for x{flow.config.scale}, not x{scale}")
    if mode not in ("per-image", "joint"):
        raise ValueError(f"mode must be 'per-image' or 'joint', got '{mode}'")
    config = config or default_config(mode)
    device = torch.device(device)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    x = unit_range_frames(frames.float(), valid)
    T = x.shape[0]
    flow = flow.to(device)
    for p in flow.parameters():
        p.requires_grad_(False)
    if mode == "joint":
        return _estimate_joint(x, valid, flow, scale, config, min_quality, g, device, mon, t0)
    kernels, losses, crops = [], [], []
    for t in range(T):
        r, c, n = select_crop(x[t:t + 1], valid[t:t + 1], config.crop, config.min_valid)
        win = (slice(r, r + n), slice(c, c + n)) if n else (slice(None),)
        k, _, loss = estimate_kernel_single(x[t][win], valid[t][win], flow, scale, config, g, device, mon.sub(t / T, (t + 1) / T))
        kernels.append(k)
        losses.append(loss)
        crops.append((r, c, n))
    raw = torch.stack(kernels)
    # each image has its own generator, hence its own unknown common blur: calibrated alone
    calibrated = torch.cat([calibrate_kernels(k[None], scale) for k in raw])
    return EstimationResult(calibrated, raw, None, None, losses, time.perf_counter() - t0, crops,
                            torch.ones(T, dtype=torch.bool))


def _estimate_joint(x, valid, flow, scale, config, min_quality, g, device, mon, t0) -> EstimationResult:
    """Joint mode of :func:`estimate_kernels` on normalised frames ``x`` ``(T, h, w)``."""
    T = x.shape[0]
    ref = int(valid.float().mean(dim=(1, 2)).argmax())
    reg = register_stack(x, valid, ref, monitor=mon)
    joint = reg.kept(min_quality)
    joint[ref] = True
    # the reference first (it anchors the HR grid), then the other frames the shared image can explain
    order = [ref] + [t for t in range(T) if t != ref and joint[t]]
    r, c, n = select_crop(x[order], valid[order], config.crop, config.min_valid)
    win = (order, slice(r, r + n), slice(c, c + n)) if n else (order,)
    if len(order) > 1:
        k, _, d, loss = estimate_kernels_joint(x[win], valid[win], reg.shifts[order], flow, scale, config, g, device, mon)
    else:
        k, _, loss = estimate_kernel_single(x[win][0], valid[win][0], flow, scale, config, g, device, mon)
        k, d = k[None], torch.zeros(1, 2)
    # frames the shared image cannot explain (land changed, cloud, failed registration) tell nothing
    # reliable about their blur: they keep the prior's kernel, the default PSF (reported)
    raw = default_psf(scale, flow.config.size).expand(T, -1, -1).clone()
    kernels, shifts = raw.clone(), reg.shifts.clone().float()
    raw[order], kernels[order], shifts[order] = k, calibrate_kernels(k, scale), d
    return EstimationResult(kernels, raw, shifts, reg.quality, [loss], time.perf_counter() - t0, [(r, c, n)] * T, joint)
