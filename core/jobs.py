"""End-to-end jobs (read -> compute -> write) shared by the CLI and the QGIS provider.

Each job validates its inputs before any heavy work, writes its outputs
atomically and returns a plain dict summary.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np
import torch

from . import __version__
from .baselines import default_psf, hr_validity, ibp, mean_bicubic
from .choices import KERNEL_MODE_DEFAULT, KERNEL_MODES, SR_METHOD_DEFAULT, SR_METHODS, TTF_FITS
from .degradation import check_scale, default_kernel_size, gaussian_kernels
from .device import resolve_device
from .inference import predict
from .metrics import cpsnr, default_data_range, psnr, ssim
from .outputs import RASTER_EXTENSIONS, atomic_outputs, check_output_path, output_dtype, output_nodata, write_geotiff
from .progress import Monitor, ensure_monitor
from .registration import register_stack
from .stack_io import FMASK_INVALID_VALUES, ImageSource, StackError, check_same_grid, read_raster, read_stack
from . import params as P

MIN_LR_SIZE = 4


def _scale_and_device(scale: int, device: str) -> tuple[int, torch.device, str]:
    """Validated scale and the torch device with the reason it was chosen (StackError otherwise)."""
    try:
        return (check_scale(scale), *resolve_device(device))
    except ValueError as exc:
        raise StackError(str(exc)) from exc


def _training_settings(steps, patch, batch, frames, seed) -> tuple[int, int, int, int, int]:
    """The training job's numeric settings, checked (None: their defaults)."""
    return P.STEPS.check(steps), P.PATCH.check(patch), P.BATCH.check(batch), P.FRAMES.check(frames), P.SEED.check(seed)


def _input_paths(sources: Sequence[ImageSource]) -> list[str]:
    return [p for s in sources for p in (s.path, s.mask_path) if p]


def run_superresolve(
    sources: Sequence[ImageSource],
    output: str,
    scale: int = 3,
    method: str = SR_METHOD_DEFAULT,
    reference: int | None = None,
    iterations: int | None = None,
    psf_sigma: float | None = None,
    kernel_bank: str | None = None,
    register: bool = True,
    min_registration_quality: float | None = None,
    model_path: str | None = None,
    tile: int | None = None,
    uncertainty_output: str | None = None,
    ttf_iterations: int | None = None,
    ttf_per_tile: bool = False,
    ttf_lr: float | None = None,
    ttf_kernel_lr: float | None = None,
    ttf_fit: str | None = None,
    kernel_output: str | None = None,
    device: str = "auto",
    invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
    report_html: str | None = None,
    monitor: Monitor | None = None,
) -> dict:
    """Super-resolve a stack and write a georeferenced GeoTIFF (``report_html``: settings, TTF
    loss curve and kernel, and how well the result reproduces the reference frame).

    ``method``: "bicubic" (registered mean of bicubic), "ibp", "piunet" (a trained
    model from ``model_path``, by default the shipped base model, in ``tile``-pixel tiles when ``tile`` > 0; optionally
    its uncertainty as a standard-deviation raster) or "piunet+ttf" (the model first
    finetuned on this stack for ``ttf_iterations``, calibrated once on a crop and
    applied to every tile, or with ``ttf_per_tile`` finetuned on every tile separately;
    ``ttf_lr`` / ``ttf_kernel_lr``: learning rates of the network tail and of the kernel latent
    (None: the benchmarked defaults of :class:`ttf.TTFConfig`; larger ones over-fit); ``ttf_fit``: what
    the finetuned output must explain, one of :data:`choices.TTF_FITS` (None: every frame of the stack);
    ``kernel_output`` receives the TTF kernel (of the centre tile when per tile) as a layer). ``reference``: 0-based frame whose
    grid the classic methods align to (None: the clearest). ``psf_sigma``: isotropic
    PSF sigma in HR pixels assumed by IBP (None: :func:`baselines.default_psf`); ``kernel_bank``: IBP
    uses each image's kernel from this bank (the Estimate kernels output, same images) instead. Numeric settings left
    None take their defaults from :mod:`params`, which also bounds them (:class:`errors.ParameterError`).
    """
    from .fkp import FKPError, default_fkp_path, load_fkp
    from .kernels import write_kernel_layer
    from .model_files import ModelFileError, base_model_path, load_model
    from .ttf import TTFConfig, finetune_per_tile, test_time_finetune

    mon = ensure_monitor(monitor)
    t0 = time.perf_counter()
    scale, dev, why = _scale_and_device(scale, device)
    if method not in SR_METHODS:
        raise StackError(f"method must be one of {SR_METHODS}, got '{method}'")
    iterations, tile, ttf_iterations = P.IBP_ITERATIONS.check(iterations), P.TILE.check(tile), P.TTF_ITERATIONS.check(ttf_iterations)
    psf_sigma, reference = P.PSF_SIGMA.check(psf_sigma), P.REFERENCE.check(reference)
    min_registration_quality = P.REGISTRATION_QUALITY.check(min_registration_quality)
    ttf_lr, ttf_kernel_lr = P.TTF_LR.check(ttf_lr), P.TTF_LR.check(ttf_kernel_lr)
    ttf_fit = TTFConfig.fit if ttf_fit is None else ttf_fit
    if ttf_fit not in TTF_FITS:
        raise StackError(f"TTF fit must be one of {TTF_FITS}, got '{ttf_fit}'")
    uses_model = method.startswith("piunet")
    if kernel_bank and method != "ibp":
        raise StackError("a kernel bank is used by the IBP method only")
    if kernel_bank and psf_sigma is not None:
        raise StackError("give either a PSF sigma or a kernel bank for IBP, not both")
    if uses_model and not model_path:
        model_path = base_model_path(scale)
        if model_path is None:
            raise StackError(f"method '{method}' needs a trained model file (no base model is shipped for x{scale})")
    inputs = _input_paths(sources) + [p for p in (model_path, kernel_bank) if p]
    for out in (output, uncertainty_output, kernel_output):
        if out:
            check_output_path(out, inputs, RASTER_EXTENSIONS)
    if report_html:
        check_output_path(report_html, inputs)
    if uncertainty_output and os.path.abspath(uncertainty_output) == os.path.abspath(output):
        raise StackError("the uncertainty output must differ from the SR output")
    net = flow = None
    if uses_model:
        try:
            net, _ = load_model(model_path, scale=scale, device=dev)
            flow = load_fkp(default_fkp_path(scale), scale) if method == "piunet+ttf" else None
        except (ModelFileError, FKPError) as exc:
            raise StackError(str(exc)) from exc
    stack = read_stack(sources, invalid_mask_values)
    if min(stack.grid.width, stack.grid.height) < MIN_LR_SIZE:
        raise StackError(f"images of {stack.grid.width}x{stack.grid.height} pixels are too small (at least {MIN_LR_SIZE}x{MIN_LR_SIZE})")
    ref = stack.clearest_index() if reference is None else int(reference)
    if not 0 <= ref < stack.count:
        raise StackError(f"reference frame {ref} does not exist (the stack has {stack.count} images, numbered from 0)")
    reference_name = stack.names[ref]
    bank_kernels = _bank_kernels(kernel_bank, scale, stack.names) if kernel_bank else None
    mon.progress(0.05, f"read {stack.count} images of {stack.grid.width}x{stack.grid.height} px")
    mon.check()
    frames, valid = torch.from_numpy(stack.data), torch.from_numpy(stack.valid)
    shifts, log_scale, ttf_kernel, ttf_res, registration = None, None, None, None, None
    if register:
        registration = register_stack(frames, valid, ref)
        used = registration.kept(min_registration_quality)
        used[ref] = True
        for name, d, q, u in zip(stack.names, registration.shifts.tolist(), registration.quality.tolist(), used.tolist()):
            mon.info(f"{name}: shift ({d[0]:+.2f}, {d[1]:+.2f}) LR px, registration quality {q:.2f}"
                     + ("" if u else f" < {min_registration_quality:g}: left out (other land or light, or not alignable)"))
        frames, valid, shifts = frames[used], valid[used], registration.shifts[used]
        bank_kernels = None if bank_kernels is None else bank_kernels[used]
        ref = int(used[:ref].sum())
    mon.progress(0.1, "frames registered")
    mon.check()
    if uses_model:
        mon.info(f"device: {why}")
        lrs = {k: v for k, v in (("lr_net", ttf_lr), ("lr_kernel", ttf_kernel_lr)) if v}
        ttf_config = TTFConfig(iterations=ttf_iterations, fit=ttf_fit, **lrs)
        if flow is not None and ttf_per_tile and tile > 0:
            hr, log_scale, ttf_kernel, ttf_res = finetune_per_tile(net, flow, frames, valid, ref, tile, ttf_config, dev,
                                                                   mon.sub(0.05, 0.95))
            mon.info("TTF per tile; centre tile: " + _ttf_summary(ttf_res))
        else:
            if flow is not None:
                net, ttf_kernel, ttf_res = test_time_finetune(net, flow, frames, valid, ref, ttf_config,
                                                              monitor=mon.sub(0.05, 0.6), device=dev)
                mon.info("TTF: " + _ttf_summary(ttf_res))
            mon.progress(0.6, "predicting")
            hr, log_scale = predict(net, frames, valid, tile=tile, device=dev, monitor=mon.sub(0.6, 0.95), reference=ref)
    else:
        if method == "bicubic":
            hr = mean_bicubic(frames, valid, scale, shifts)
        else:
            kernel = bank_kernels if bank_kernels is not None else default_psf(scale) if psf_sigma is None \
                else gaussian_kernels(psf_sigma, psf_sigma, 0.0, default_kernel_size(scale), scale)
            hr = ibp(frames, valid, scale, shifts, kernel, iterations=iterations, monitor=mon.sub(0.15, 0.95))
    nodata = output_nodata(stack)
    covered = hr_validity(valid, scale).numpy()
    out = np.where(covered, hr.numpy(), nodata).astype(output_dtype(nodata))
    params = {"scale": scale, "method": method, "iterations": iterations if method == "ibp" else None,
              "psf_sigma": psf_sigma, "kernel_bank": os.path.basename(kernel_bank) if kernel_bank else None,
              "register": register, "min_registration_quality": min_registration_quality, "tile": tile, "invalid_mask_values": list(invalid_mask_values),
              "model": os.path.basename(model_path) if model_path else None,
              "ttf_iterations": ttf_iterations if method == "piunet+ttf" else None,
              "ttf_per_tile": bool(ttf_per_tile and tile > 0) if method == "piunet+ttf" else None,
              "ttf_lr": ttf_lr, "ttf_kernel_lr": ttf_kernel_lr,
              "ttf_fit": ttf_fit if method == "piunet+ttf" else None}
    tags = {
        "STACKSR_VERSION": __version__,
        "STACKSR_ALGORITHM": "superresolve",
        "STACKSR_METHOD": method,
        "STACKSR_SCALE": str(scale),
        "STACKSR_PARAMETERS": params,
        "STACKSR_INPUTS": stack.names,
        "STACKSR_REFERENCE": reference_name,
        "STACKSR_SHIFTS": None if registration is None else [[round(v, 4) for v in d] for d in registration.shifts.tolist()],
        "STACKSR_REGISTRATION": None if registration is None else {
            n: {"quality": round(q, 4), "used": u} for n, q, u in zip(stack.names, registration.quality.tolist(), used.tolist())},
    }
    grid = stack.grid.scaled(scale)
    unc_path = uncertainty_output if log_scale is not None else None
    ker_path = kernel_output if ttf_kernel is not None else None
    with atomic_outputs([output, unc_path, ker_path, report_html], ".tif") as (t_out, t_unc, t_ker, t_rep):
        write_geotiff(t_out, out, grid, nodata, tags, band_names=[f"{method} x{scale}"])
        if t_unc:
            # a Laplace distribution with scale b has standard deviation sqrt(2) * b
            std = np.where(covered, np.sqrt(2.0) * np.exp(log_scale.numpy()), nodata).astype(output_dtype(nodata))
            write_geotiff(t_unc, std, grid, nodata, {**tags, "STACKSR_PRODUCT": "uncertainty (std)"},
                          band_names=["uncertainty (standard deviation)"])
        if t_ker:
            write_kernel_layer(t_ker, ttf_kernel.numpy(), scale, f"TTF {reference_name}")
        seconds = round(time.perf_counter() - t0, 3)
        if t_rep:
            _sr_report(t_rep, hr, frames[ref], valid[ref], scale, ttf_kernel, ttf_res,
                       [("method", method), ("scale", f"x{scale}"), ("images", stack.count),
                        ("reference frame", reference_name), ("images used (registration quality)", int(frames.shape[0])),
                        ("device", str(dev) if uses_model else "cpu"),
                        ("tile (LR px)", tile if uses_model else "-"), ("seconds", seconds)])
    mon.progress(1.0, f"wrote {output}")
    return {"output": output, "uncertainty": uncertainty_output if log_scale is not None else None, "report": report_html,
            "kernel": kernel_output if ttf_kernel is not None else None, "method": method,
            "scale": scale, "reference": reference_name, "images": stack.count, "images_used": int(frames.shape[0]),
            "seconds": seconds}


def _bank_kernels(path: str, scale: int, names: Sequence[str]) -> torch.Tensor:
    """The kernels ``(T, K, K)`` of a bank for the images ``names``, in their order (StackError if
    the bank is unreadable, of another scale, or misses an image)."""
    from .kernels import KernelBank

    bank = KernelBank.load(path, scale=scale)
    index = {n: i for i, n in enumerate(bank.names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise StackError(f"kernel bank '{path}' has no kernel for '{missing[0]}' (it was estimated on other images)")
    return torch.from_numpy(bank.kernels[[index[n] for n in names]])


def _ttf_summary(res) -> str:
    """One log line: loss change, and which iteration the TTF guard kept."""
    line = f"loss {res.losses[0]:.4f} -> {res.losses[-1]:.4f}" if res.losses else "no iteration"
    if res.reverted:
        return line + "; finetuning did not pass the guard (the untuned network passed its check better): kept the untuned network"
    return line + f"; kept iteration {res.kept_iteration} (guard check {res.kept_check:.4f}, untuned {res.baseline:.4f})"


def _sr_report(path: str, hr: torch.Tensor, ref_frame: torch.Tensor, ref_valid: torch.Tensor, scale: int,
               ttf_kernel: torch.Tensor | None, ttf_res, summary: list[tuple]) -> None:
    """Settings, TTF curve and kernel, and the reference-consistency check: the SR image blurred
    with the TTF kernel (else the default PSF), decimated and compared with the reference frame."""
    from .degradation import blur_downsample
    from .kernels import fit_caption, fit_gaussian, kernel_png_base64
    from .report import figure, line_chart, table, write_report

    kernel = ttf_kernel if ttf_kernel is not None else default_psf(scale)
    back = blur_downsample(torch.nan_to_num(hr.float()), kernel.float(), scale)
    ok = ref_valid & torch.isfinite(back)
    rmse = float(((back - ref_frame.float())[ok] ** 2).mean().sqrt()) if bool(ok.any()) else float("nan")
    spread = float(ref_frame[ref_valid].float().std()) if bool(ref_valid.any()) else float("nan")
    sections = [("Summary", table(summary)),
                ("Consistency with the reference frame", table(
                    [("RMSE of SR blurred and decimated vs reference (input units)", rmse),
                     ("standard deviation of the reference (for scale)", spread),
                     ("kernel used", "TTF kernel" if ttf_kernel is not None else "default PSF")]))]
    if ttf_res is not None and ttf_res.losses:
        curves = {"L1 loss (fitted pixels)": list(enumerate(ttf_res.losses, 1))}
        check = [(i, v) for i, v in enumerate(ttf_res.check_losses, 1) if v == v]
        if check:
            curves["guard check (held-out pixels, or the other frames)"] = check
        sections.append(("Test-time finetuning loss", line_chart(curves, "iteration", "loss")
                         + table([("kept iteration (0 = untuned network)", ttf_res.kept_iteration),
                                  ("guard check of the untuned network", ttf_res.baseline)])))
    if ttf_kernel is not None:
        k = ttf_kernel.numpy()
        sections.append(("TTF kernel", figure(kernel_png_base64(k), fit_caption("TTF kernel", fit_gaussian(k, scale)))))
    write_report(path, "StackSR super-resolution report", sections)


def run_score(
    sr_path: str,
    reference_path: str,
    reference_mask: str | None = None,
    invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
    max_shift: int | None = None,
    data_range: float | None = None,
    sr_band: int = 1,
    reference_band: int = 1,
) -> dict:
    """cPSNR (Proba-V), PSNR and SSIM of an SR raster against a reference raster of the same grid."""
    max_shift, data_range = P.MAX_SHIFT.check(max_shift), P.DATA_RANGE.check(data_range)
    sr, sr_ok, sr_grid, _ = read_raster(sr_path, sr_band)
    hr, hr_ok, hr_grid, hr_dtype = read_raster(reference_path, reference_band)
    if (sr_grid.width, sr_grid.height) != (hr_grid.width, hr_grid.height):
        raise StackError(f"'{sr_path}' is {sr_grid.width}x{sr_grid.height} px but the reference is {hr_grid.width}x{hr_grid.height} px")
    if sr_grid.crs_wkt and hr_grid.crs_wkt:
        check_same_grid(sr_grid, hr_grid, sr_path, reference_path)
    if reference_mask:
        mask, _, mgrid, _ = read_raster(reference_mask)
        check_same_grid(mgrid, hr_grid, reference_mask, reference_path)
        hr_ok &= ~np.isin(mask, np.asarray(list(invalid_mask_values), dtype=np.float64))
    rng = float(data_range) if data_range else default_data_range(hr_dtype, np.where(hr_ok, hr, np.nan))
    sr = np.where(sr_ok, sr, np.nan)
    try:
        c = cpsnr(sr, hr, hr_ok, max_shift=max_shift, data_range=rng)
        both = hr_ok & sr_ok
        p = psnr(sr, hr, both, data_range=rng)
        s = ssim(sr, hr, both, data_range=rng)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    return {"cpsnr": round(c.cpsnr, 4), "psnr": round(p, 4), "ssim": round(s, 5),
            "shift": list(c.shift), "bias": c.bias, "data_range": rng}


def run_estimate_kernels(
    sources: Sequence[ImageSource],
    bank_path: str,
    scale: int = 3,
    mode: str = KERNEL_MODE_DEFAULT,
    iterations: int | None = None,
    crop: int | None = None,
    kernel_size: int | None = None,
    prior_path: str | None = None,
    device: str = "auto",
    seed: int | None = None,
    layers_folder: str | None = None,
    report_html: str | None = None,
    invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
    monitor: Monitor | None = None,
) -> dict:
    """Estimate one blur kernel per image (DIP-FKP) and write the kernel bank (+ layers, gallery)."""
    from dataclasses import asdict, replace

    from .fkp import FKPError, default_fkp_path, load_fkp
    from .kernel_estimation import default_config, estimate_kernels
    from .kernels import KernelBank, write_gallery, write_kernel_layers

    mon = ensure_monitor(monitor)
    iterations, crop, kernel_size = P.KERNEL_ITERATIONS.check(iterations), P.KERNEL_CROP.check(crop), P.KERNEL_SIZE.check(kernel_size)
    seed = P.SEED.check(seed)
    scale, dev, why = _scale_and_device(scale, device)
    if mode not in KERNEL_MODES:
        raise StackError(f"mode must be one of {KERNEL_MODES}, got '{mode}'")
    size = kernel_size or default_kernel_size(scale)
    inputs = _input_paths(sources)
    for out in (bank_path, report_html):
        if out:
            check_output_path(out, inputs)
    if layers_folder and os.path.exists(layers_folder) and not os.path.isdir(layers_folder):
        raise StackError(f"the kernel layers folder '{layers_folder}' is a file; give a folder")
    try:
        flow = load_fkp(prior_path or default_fkp_path(scale), scale, size, dev)
    except FKPError as exc:
        raise StackError(str(exc)) from exc
    config = default_config(mode)
    if iterations is not None:
        config = replace(config, iterations=iterations, warmup=min(config.warmup, iterations // 3))
    if crop is not None:
        config = replace(config, crop=int(crop))
    stack = read_stack(sources, invalid_mask_values)
    min_side = min(stack.grid.width, stack.grid.height)
    if min_side * scale < size:
        raise StackError(f"images of {stack.grid.width}x{stack.grid.height} px are smaller than the {size}x{size} kernel at x{scale}")
    mon.info(f"device: {why}")
    mon.progress(0.02, f"read {stack.count} images; estimating kernels ({mode})")
    res = estimate_kernels(torch.from_numpy(stack.data), torch.from_numpy(stack.valid), flow, scale, mode,
                           config, seed, dev, mon.sub(0.02, 0.95))
    meta = {"mode": mode, "seed": seed, "device": str(dev), "config": asdict(config),
            "prior": os.path.basename(prior_path or default_fkp_path(scale)), "seconds": round(res.seconds, 2),
            "final_loss": [round(l[-1], 8) for l in res.losses], "crops": res.crops,
            "shifts": None if res.shifts is None else res.shifts.tolist(), "stacksr_version": __version__}
    bank = KernelBank(res.kernels.numpy().astype(np.float32), stack.names, scale, meta)
    bank.save(bank_path)
    layers = write_kernel_layers(bank, layers_folder) if layers_folder else []
    if report_html:
        write_gallery(bank, report_html, os.path.splitext(report_html)[0] + ".png")
    mon.progress(1.0, f"wrote {bank_path}")
    fits = bank.fits()
    return {"bank": bank_path, "layers": layers, "report": report_html, "mode": mode, "scale": scale,
            "images": stack.count, "digest": bank.digest(), "device": str(dev), "seconds": round(res.seconds, 2),
            "kernels": [{"image": n, "sigma1": round(f.sigma1, 3), "sigma2": round(f.sigma2, 3),
                         "theta_deg": round(float(np.degrees(f.theta)), 1)} for n, f in zip(stack.names, fits)]}


def run_train_self_supervised(
    stacks_sources: Sequence[Sequence[ImageSource]],
    bank_path: str | None,
    output: str,
    scale: int = 3,
    steps: int | None = None,
    patch: int | None = None,
    batch: int | None = None,
    frames: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    resume: str | None = None,
    invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
    report_html: str | None = None,
    monitor: Monitor | None = None,
    from_base: bool = True,
    init_model: str | None = None,
) -> dict:
    """Train PIUNet self-supervised on one or more LR stacks (``report_html``: loss curve,
    settings and the kernel bank used).

    Training fine-tunes ``init_model`` when given, else the shipped base model (``from_base``,
    where one is shipped for the scale), else starts from scratch; the architecture is the
    starting model's.

    ``bank_path``: a kernel bank of this scale; None estimates one on the fly (joint
    DIP-FKP on every stack). ``resume``: a ``<model>.last`` checkpoint to continue.
    ``patch``: CR patch size; 0 picks the largest (up to 32) that leaves a validation strip.
    """
    from .fkp import FKPError, default_fkp_path, load_fkp
    from .kernel_estimation import estimate_kernels
    from .kernels import KernelBank, KernelBankError
    from .model_files import ModelFileError, base_model_path, load_model
    from .sampling import StackData, area_split, default_patch
    from .training import TrainConfig, bf16_supported, train_self_supervised

    mon = ensure_monitor(monitor)
    steps, patch, batch, frames, seed = _training_settings(steps, patch, batch, frames, seed)
    scale, dev, why = _scale_and_device(scale, device)
    try:
        bank = KernelBank.load(bank_path, scale=scale) if bank_path else None
    except KernelBankError as exc:
        raise StackError(str(exc)) from exc
    init = init_model or (base_model_path(scale) if from_base and not resume else None)
    if init:
        try:
            load_model(init, scale=scale)
        except ModelFileError as exc:
            raise StackError(str(exc)) from exc
    inputs = [p for srcs in stacks_sources for p in _input_paths(srcs)] + ([bank_path] if bank_path else []) \
        + ([init] if init else [])
    for out in (output, report_html):
        if out:
            check_output_path(out, inputs)
    stacks, names = [], []
    for srcs in stacks_sources:
        st = read_stack(srcs, invalid_mask_values)
        stacks.append(StackData(torch.from_numpy(st.data), torch.from_numpy(st.valid), st.names[0]))
        names += st.names
    if patch <= 0:
        patch = default_patch([tuple(st.frames.shape[-2:]) for st in stacks], scale)
    try:  # refuse stacks too small for the patches before any kernel estimation
        area_split(stacks, patch * scale, TrainConfig.val_fraction)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    train_mon = mon
    if bank is None:
        try:
            flow = load_fkp(default_fkp_path(scale), scale, device=dev)
        except FKPError as exc:
            raise StackError(str(exc)) from exc
        kernels = []
        for i, st in enumerate(stacks):
            sub = mon.sub(0.2 * i / len(stacks), 0.2 * (i + 1) / len(stacks))
            kernels.append(estimate_kernels(st.frames, st.valid, flow, scale, "joint", seed=seed, device=dev, monitor=sub).kernels)
        bank = KernelBank(torch.cat(kernels).numpy().astype(np.float32), names, scale, {"mode": "joint", "on_the_fly": True})
        mon.info(f"estimated {len(names)} kernels on the fly (joint DIP-FKP)")
        train_mon = mon.sub(0.2, 1.0)
    use_bf16 = bf16_supported(dev)
    mon.info(f"device: {why}; bf16 autocast {'on' if use_bf16 else 'off'}; kernel bank {bank.digest()} ({len(bank.names)} kernels)")
    mon.info(f"starting from {os.path.basename(init)}" if init else "starting from scratch" if not resume else f"resuming {resume}")
    config = TrainConfig(scale=scale, frames=frames, patch=patch, batch=batch, steps=steps, seed=seed, bf16=use_bf16)
    try:
        res = train_self_supervised(stacks, torch.from_numpy(bank.kernels), config, output, bank.digest(),
                                    resume=resume, device=dev, monitor=train_mon, init=init)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    if report_html:
        _training_report(report_html, res, config, str(dev), names, bank)
        res["report"] = report_html
    return res


def _training_report(path: str, res: dict, config, device: str, images: Sequence[str], bank=None) -> None:
    from dataclasses import asdict

    from .kernels import gallery_section
    from .report import line_chart, table, write_report

    hist = res["history"]
    sections = [
        ("Summary", table([("model", os.path.basename(res["output"])), ("steps", res["steps"]),
                           ("best validation loss", res["best_val"]), ("seconds", res["seconds"]), ("device", device),
                           ("images", len(images))])),
        ("Loss", line_chart({"training (last batch)": [(h[0], h[1]) for h in hist],
                             "validation (held-out area)": [(h[0], h[2]) for h in hist]}, "step", "loss")),
        ("Settings", table(sorted(asdict(config).items()), ("setting", "value"))),
    ]
    if bank is not None:
        sections.append(("Kernel bank", gallery_section(bank)))
    write_report(path, "StackSR training report", sections)


def run_train_supervised(
    sources: Sequence[ImageSource],
    hr_path: str,
    output: str,
    scale: int = 3,
    steps: int | None = None,
    patch: int | None = None,
    batch: int | None = None,
    frames: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    resume: str | None = None,
    invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
    monitor: Monitor | None = None,
) -> dict:
    """Train PIUNet with an HR reference raster on the stack's grid refined ``scale`` times."""
    from .sampling import StackData
    from .training import TrainConfig, bf16_supported, train_supervised

    mon = ensure_monitor(monitor)
    steps, patch, batch, frames, seed = _training_settings(steps, patch, batch, frames, seed)
    scale, dev, why = _scale_and_device(scale, device)
    check_output_path(output, _input_paths(sources) + [hr_path])
    st = read_stack(sources, invalid_mask_values)
    hr, hr_ok, hr_grid, _ = read_raster(hr_path)
    check_same_grid(hr_grid, st.grid.scaled(scale), hr_path, f"the stack refined x{scale}")
    if patch <= 0:
        patch = max(min(32, min(st.grid.width, st.grid.height) // 2), 2)
    mon.info(f"device: {why}")
    config = TrainConfig(scale=scale, frames=frames, patch=patch, batch=batch, steps=steps, seed=seed,
                         bf16=bf16_supported(dev))
    hr_t = torch.from_numpy(np.where(hr_ok, hr, np.nan).astype(np.float32))
    try:
        return train_supervised([StackData(torch.from_numpy(st.data), torch.from_numpy(st.valid), st.names[0])],
                                [hr_t], config, output, resume=resume, device=dev, monitor=mon)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
