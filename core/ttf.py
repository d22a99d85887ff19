"""Test-time finetuning (TTF): adapt PIUNet and the kernel to one stack.

Minimises ``|| blur_downsample(PIUNet(stack), G(z_k)) - x_ref ||_1`` over the valid
pixels of the reference frame (with the bias/shift search of the training loss),
jointly over network weights and the FKP latent ``z_k`` (kept on the sphere).

Speed: the network is split at the temporal fusion. The per-frame part (feature
extraction, TEFA blocks, registration) runs once without gradients and its fused
features are cached; only the tail (body convolution and upsampler) is finetuned,
which makes an iteration about as cheap as a single-image network. Calibration
runs on a crop, with the global pools of the whole stack (the same context that
:func:`inference.predict` uses), and the tuned tail is then applied to the whole stack.

PIUNet has no BatchNorm (its normalisations are per-pixel LayerNorms), so a batch of
one scene needs no special handling; the network stays in eval mode.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from .baselines import temporal_fill
from .degradation import blur_downsample
from .fkp import KernelFlow, project_to_sphere
from .inference import predict, stack_base, stack_context, tile_windows
from .kernel_estimation import select_crop
from .piunet import PIUNet
from .progress import Monitor, ensure_monitor
from .training import normalize_stack, shift_search_l1


@dataclass(frozen=True)
class TTFConfig:
    iterations: int = 50
    lr_net: float = 1e-4
    lr_kernel: float = 2e-2
    crop: int = 64  # LR pixels of the calibration window (0: whole stack)
    max_shift: int = 1


def test_time_finetune(
    net: PIUNet,
    flow: KernelFlow,
    frames: torch.Tensor,
    valid: torch.Tensor,
    ref_index: int,
    config: TTFConfig = TTFConfig(),
    z_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    monitor: Monitor | None = None,
    device: str | torch.device = "cpu",
) -> tuple[PIUNet, torch.Tensor, list[float]]:
    """Return a finetuned copy of ``net`` (on ``device``), the TTF kernel (CPU) and the loss curve."""
    mon = ensure_monitor(monitor)
    device = torch.device(device)
    s = net.config.scale
    x = temporal_fill(frames.float(), valid)
    xn, _, _ = normalize_stack(x, valid)
    xn, valid = xn.to(device), valid.to(device)
    flow = flow.to(device)
    T, H, W = xn.shape
    tuned = copy.deepcopy(net).to(device).eval()
    for p in tuned.parameters():
        p.requires_grad_(False)
    context = stack_context(tuned, xn, device)
    base = stack_base(tuned, xn, valid, ref_index)
    if config.crop and config.crop < min(H, W):
        # one calibration window is enough (kernel and weights are global): the most textured valid one
        r, c, n = select_crop(xn, valid, config.crop, 0.9)
        xn, valid = xn[:, r:r + n, c:c + n], valid[:, r:r + n, c:c + n]
        base = None if base is None else base[r * s:(r + n) * s, c * s:(c + n) * s]
    base = None if base is None else base[None]
    with torch.no_grad():
        fused = tuned.fuse(xn[None], context)
    params = list(tuned.body_out.parameters()) + list(tuned.upsample.parameters())
    for p in params:
        p.requires_grad_(True)
    for p in flow.parameters():
        p.requires_grad_(False)
    g = generator or torch.Generator().manual_seed(0)
    z0 = z_init if z_init is not None else torch.randn(1, flow.dim, generator=g)
    z = project_to_sphere(z0.reshape(1, -1).float().to(device)).requires_grad_(True)
    opt = torch.optim.Adam([{"params": params, "lr": config.lr_net}, {"params": [z], "lr": config.lr_kernel}])
    target, mask = xn[ref_index][None], valid[ref_index][None]
    border = math.ceil((flow.config.size // 2) / s)
    inner = torch.zeros_like(mask)
    inner[:, border:-border or None, border:-border or None] = True
    losses = []
    for it in range(config.iterations):
        mon.check()
        sr, _ = tuned.decode(fused, xn[None], base)
        pred = blur_downsample(sr, flow.kernels(z)[0], s)
        loss = shift_search_l1(pred, target, mask & inner, config.max_shift).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(project_to_sphere(z))
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"test-time finetuning diverged at iteration {it + 1}")
        mon.progress((it + 1) / config.iterations, f"TTF iteration {it + 1}/{config.iterations}, loss {losses[-1]:.4f}")
    for p in tuned.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        kernel = flow.kernels(z)[0].cpu()
    return tuned, kernel, losses


def finetune_per_tile(
    net: PIUNet,
    flow: KernelFlow,
    frames: torch.Tensor,
    valid: torch.Tensor,
    ref_index: int,
    tile: int,
    config: TTFConfig = TTFConfig(),
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
    """TTF per tile (the option for scenes whose blur or content changes across the raster):
    every ``tile``-px tile, with a halo of the network's receptive radius, is finetuned and
    predicted on its own, and its core is kept. Returns the SR image and log-scale in input
    units, and the kernel and loss curve of the tile at the raster's centre."""
    mon = ensure_monitor(monitor)
    s = net.config.scale
    T, H, W = frames.shape
    sr, log_scale = torch.empty(H * s, W * s), torch.empty(H * s, W * s)
    windows = tile_windows(H, W, tile, net.receptive_radius(), s)
    centre = ((H // 2) * s, (W // 2) * s)  # HR pixel whose tile gives the reported kernel and curve
    kernel, losses = None, []
    for i, ((rows, cols), core, dest) in enumerate(windows):
        win_f, win_v = frames[:, rows, cols], valid[:, rows, cols]
        sub = mon.sub(i / len(windows), (i + 1) / len(windows))
        tuned, k, curve = test_time_finetune(net, flow, win_f, win_v, ref_index, config, monitor=sub.sub(0, 0.8),
                                             device=device)
        out, ls = predict(tuned, win_f, win_v, device=device, reference=ref_index, monitor=sub.sub(0.8, 1.0))
        sr[dest], log_scale[dest] = out[core], ls[core]
        if all(d.start <= c < d.stop for d, c in zip(dest, centre)):
            kernel, losses = k, curve
    return sr, log_scale, kernel, losses
