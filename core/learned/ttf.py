"""Test-time finetuning (TTF): adapt PIUNet and the kernel to one stack.

The paper minimises ``|| blur_downsample(PIUNet(stack), G(z_k)) - x_ref ||_1`` over the valid
pixels of the reference frame (with the bias/shift search of the training loss), jointly over
network weights and the FKP latent ``z_k`` (kept on the sphere). By default StackSR fits every
frame ``t`` of the stack instead, ``x_t ~ blur_downsample(shift(PIUNet(stack), d_t), G(z_t))`` with
its registration ``d_t`` and its own latent ``z_t``, the reference weighted most: on frames cut from
one image the reference alone did not carry enough to improve the network (see :class:`TTFConfig`).

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

import torch

from .. import distributed
from ..adam import Adam
from ..choices import TTF_FITS
from ..degradation.operators import blur_downsample, shift_images
from ..degradation.fkp import KernelFlow, project_to_sphere
from .inference import predict, stack_context, window_base
from ..estimation.kernel_estimation import select_crop
from .losses import grid_band_l1, shift_search_l1, unseen_grid_share
from .piunet import PIUNet
from .ttf_config import GUARDS, TTFConfig, TTFResult
from ..progress import Monitor, ensure_monitor
from ..classic.registration import register_frames
from ..io.windows import StackStats, TensorStack, normalised, run_tiles, stack_stats, tile_windows


def holdout_mask(shape: tuple[int, int], block: int, share: float, generator: torch.Generator) -> torch.Tensor:
    """``(h, w)`` bool: ``share`` of the ``block``-px blocks, drawn at random (at least one)."""
    h, w = shape
    nb = (math.ceil(h / block), math.ceil(w / block))
    pick = torch.rand(nb, generator=generator) < share
    if not bool(pick.any()):
        pick.view(-1)[int(torch.randint(pick.numel(), (1,), generator=generator))] = True
    return pick.repeat_interleave(block, 0).repeat_interleave(block, 1)[:h, :w]


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
    stats: StackStats | None = None,
    context: list[torch.Tensor] | None = None,
) -> tuple[PIUNet, torch.Tensor, TTFResult]:
    """Finetune ``net`` on one stack ``frames`` ``(T, H, W)`` (validity ``valid``, same shape).

    ``frames`` may be a region of a larger stack: ``stats`` (:func:`windows.stack_stats`) and
    ``context`` (:func:`inference.stack_context`) are then the whole stack's, as prediction will use
    them (by default those of ``frames``).

    What the output must explain (``config.fit``): by default every frame of the stack, each moved
    onto the reference grid by its registration and degraded with its own kernel latent, the
    reference weighing ``reference_weight`` of the loss; with "reference", the reference frame alone
    (as published). Fitting the stack brings in what the other frames know about the scene
    (BENCHMARKS.md: on stacks cut from one image TTF on the reference alone loses 0.06 dB on average,
    on the stack it gains 0.55 dB; on real dates both gain over 1 dB).

    Three phases on the calibration window: the kernel latents alone are fitted to the untuned
    network's output (``kernel_warmup`` iterations: the network's best consistency with the
    frames, the guard's baseline), then network tail and kernels together (``iterations``).
    The guard then decides what is returned. By default ("final") a quarter of the reference's
    blocks are held out of the loss, and the untuned network is kept when the finetuned one explains
    them more than ``guard_tolerance`` worse: finetuning that over-fits the reference is undone.
    "best" keeps the best iteration on those blocks; "frames" judges how well the result, moved
    onto each other frame (registration) and degraded with the TTF kernel, explains those frames
    (on real stacks the reference legitimately differs from the other dates, see BENCHMARKS.md).
    No guard sees the blur/sharpness ambiguity (a sharper image with a wider kernel fits as well).

    Returns a finetuned copy of ``net`` (on ``device``), the reference's TTF kernel ``(K, K)`` (CPU) and a
    :class:`TTFResult`.
    """
    if config.guard not in GUARDS:
        raise ValueError(f"guard must be one of {GUARDS}, got '{config.guard}'")
    if config.fit not in TTF_FITS:
        raise ValueError(f"fit must be one of {TTF_FITS}, got '{config.fit}'")
    if not 0 < config.reference_weight <= 1:
        raise ValueError(f"reference_weight must be in (0, 1], got {config.reference_weight}")
    mon = ensure_monitor(monitor)
    device = torch.device(device)
    s = net.config.scale
    region = TensorStack(frames, valid)
    stats = stack_stats(region) if stats is None else stats
    xn = normalised(frames, valid, stats)
    tuned = copy.deepcopy(net).to(device).eval()
    for p in tuned.parameters():
        p.requires_grad_(False)
    context = stack_context(tuned, region, stats, device) if context is None else context
    base = None
    if tuned.config.residual == "ibp":
        base = window_base(tuned, xn, valid, register_frames(xn, valid, ref_index), stats)
    xn, valid = xn.to(device), valid.to(device)
    base = None if base is None else base.to(device)
    flow = flow.to(device)
    T, H, W = xn.shape
    if config.crop and config.crop < min(H, W):
        # one calibration window is enough (kernel and weights are global): the most textured valid one
        r, c, n = select_crop(xn, valid, config.crop, 0.9)
        xn, valid = xn[:, r:r + n, c:c + n], valid[:, r:r + n, c:c + n]
        base = None if base is None else base[r * s:(r + n) * s, c * s:(c + n) * s]
    base = None if base is None else base[None]
    with torch.no_grad():
        fused = tuned.fuse(xn[None], context)
    params = list(tuned.body_out.parameters()) + list(tuned.upsample.parameters())
    for p in flow.parameters():
        p.requires_grad_(False)
    g = generator or torch.Generator().manual_seed(0)
    z0 = z_init if z_init is not None else torch.randn(1, flow.dim, generator=g)
    target, mask = xn[ref_index][None], valid[ref_index][None]
    border = math.ceil((flow.config.size // 2) / s)
    inner = torch.zeros_like(mask)
    inner[:, border:-border or None, border:-border or None] = True
    held = holdout_mask(mask.shape[-2:], config.holdout_block, config.holdout, g).to(device)[None] \
        if config.guard in ("best", "final") and config.holdout > 0 else torch.zeros_like(mask)
    check_mask = mask & inner & held
    others = [t for t in range(T) if t != ref_index and bool(valid[t].any())]
    need_moves = others and (config.guard == "frames" or config.fit == "stack")
    # registration is a CPU algorithm (small integer searches, per-frame solves)
    all_moves = register_frames(xn.cpu(), valid.cpu(), ref_index).to(device) * s if need_moves else None
    moves = all_moves[others] if all_moves is not None and config.guard == "frames" else None
    guarded = bool(check_mask.any()) if config.guard in ("best", "final") else moves is not None
    # the frames the output must explain (reference first), each with its own kernel latent; the
    # held-out blocks stay out of every frame's loss so the guard's check sees unfitted ground
    fitted = [ref_index] + (others if config.fit == "stack" and all_moves is not None else [])
    fit_targets = xn[fitted]
    fit_masks = valid[fitted] & inner & ~held
    fit_moves = all_moves[fitted] if len(fitted) > 1 else None
    weights = torch.full((len(fitted),), (1 - config.reference_weight) / max(len(fitted) - 1, 1), device=device)
    weights[0] = config.reference_weight if len(fitted) > 1 else 1.0
    seen = None if fit_moves is None else fit_moves[weights > 0]  # frames without weight measure nothing
    grid_weights = tuple(config.grid_weight * u for u in unseen_grid_share(seen, s))
    z0 = z0.reshape(1, -1).float().expand(len(fitted), -1)
    z = project_to_sphere(z0.to(device)).requires_grad_(True)

    def seen_by(sr: torch.Tensor, frame_moves: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """The result ``(1, H, W)`` as frames at ``frame_moves`` ``(n, 2)`` (HR px) see it: moved, then
        blurred with ``kernels`` (one, or one per frame) and decimated, ``(n, h, w)``."""
        return blur_downsample(shift_images(sr[0].expand(len(frame_moves), -1, -1), frame_moves), kernels, s)

    def fit_loss(sr: torch.Tensor) -> torch.Tensor:
        """Weighted L1 of the degraded result against the fitted frames, on their fitted pixels."""
        kernels = flow.kernels(z)
        pred = blur_downsample(sr, kernels[0], s) if fit_moves is None else seen_by(sr, fit_moves, kernels)
        return (shift_search_l1(pred, fit_targets, fit_masks, config.max_shift) * weights).sum()

    @torch.no_grad()
    def check_of(sr: torch.Tensor) -> float:
        """The guard's check (NaN without a guard): the other frames, or the held-out blocks."""
        if not guarded:
            return math.nan
        kernel = flow.kernels(z)[0]
        if moves is not None:  # how well the result, moved and degraded, explains the other frames
            return float(shift_search_l1(seen_by(sr, moves, kernel), xn[others], valid[others] & inner,
                                         config.max_shift).mean())
        return float(shift_search_l1(blur_downsample(sr, kernel, s), target, check_mask, config.max_shift).mean())

    def tail_state() -> list[torch.Tensor]:  # only the tail and z move: a snapshot needs nothing else
        return [p.detach().clone() for p in params] + [z.detach().clone()]

    total = config.kernel_warmup + config.iterations
    with torch.no_grad():
        sr0, _ = tuned.decode(fused, xn[None], base)
    kopt = Adam([z], lr=config.lr_kernel)
    for it in range(config.kernel_warmup):
        mon.check()
        fit = fit_loss(sr0)
        kopt.zero_grad(set_to_none=True)
        fit.backward()
        kopt.step()
        with torch.no_grad():
            z.copy_(project_to_sphere(z))
        mon.progress((it + 1) / total, f"TTF kernel warm-up {it + 1}/{config.kernel_warmup}")
    baseline = check_of(sr0)
    best = (baseline, 0, tail_state())
    for p in params:
        p.requires_grad_(True)
    opt = Adam([{"params": params, "lr": config.lr_net}, {"params": [z], "lr": config.lr_kernel}])
    losses, checks = [], []
    for it in range(config.iterations):
        mon.check()
        sr, _ = tuned.decode(fused, xn[None], base)
        fit, check = fit_loss(sr), check_of(sr)
        objective = fit + grid_band_l1(sr - sr0, s, grid_weights) if config.grid_weight else fit
        if it > 0 and config.guard == "best" and guarded and check < best[0]:  # the state before this step is iteration `it`
            best = (check, it, tail_state())
        opt.zero_grad(set_to_none=True)
        objective.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(project_to_sphere(z))
        losses.append(float(fit.detach()))
        checks.append(check)
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"test-time finetuning diverged at iteration {it + 1}")
        mon.progress((config.kernel_warmup + it + 1) / total,
                     f"TTF iteration {it + 1}/{config.iterations}, loss {losses[-1]:.4f}")
    kept, kept_loss = config.iterations, math.nan
    if guarded:
        with torch.no_grad():
            final = check_of(tuned.decode(fused, xn[None], base)[0])
        if final < best[0] * (1 + (config.guard_tolerance if config.guard != "best" else 0.0)):
            best = (final, config.iterations, None)
        kept_loss, kept, state = best
        if state is not None:
            with torch.no_grad():
                for dst, src in zip(params + [z], state):
                    dst.copy_(src)
    for p in tuned.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        kernel = flow.kernels(z)[0].cpu()
    return tuned, kernel, TTFResult(losses, checks, baseline, kept, kept_loss)


def finetune_per_tile(
    net: PIUNet,
    flow: KernelFlow,
    source,
    ref_index: int,
    tile: int,
    sink,
    config: TTFConfig = TTFConfig(),
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
) -> tuple[torch.Tensor, TTFResult]:
    """TTF per tile (the option for scenes whose blur or content changes across the raster):
    every ``tile``-px tile of ``source`` (:mod:`windows`), with a halo of the network's receptive
    radius, is finetuned and predicted on its own, and its core handed to ``sink`` as (SR, log-scale)
    in input units. Returns the kernel and :class:`TTFResult` of the tile at the raster's centre.
    Under torchrun every process finetunes and predicts every n-th tile; every process gets the
    centre tile's kernel and result."""
    s, H, W = net.config.scale, source.height, source.width
    halo = net.receptive_radius()
    windows = tile_windows(H, W, max(H, W) if tile <= 0 else tile, halo, s)
    centre = ((H // 2) * s, (W // 2) * s)  # HR pixel whose tile gives the reported kernel and curve
    index = next(i for i, (_, _, dest) in enumerate(windows) if all(d.start <= c < d.stop for d, c in zip(dest, centre)))
    found: dict = {}

    def compute(frames: torch.Tensor, valid: torch.Tensor, window, mon: Monitor) -> tuple[torch.Tensor, torch.Tensor]:
        tuned, k, res = test_time_finetune(net, flow, frames, valid, ref_index, config, device=device, monitor=mon)
        if window == windows[index][0]:
            found.update(kernel=k, result=res)
        return predict(tuned, frames, valid, device=device, reference=ref_index, share_tiles=False)

    run_tiles(source, s, tile, halo, compute, sink, monitor)
    kernel, result = distributed.from_rank((found.get("kernel"), found.get("result")), index % distributed.current().world)
    return kernel, result
