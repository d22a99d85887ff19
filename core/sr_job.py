"""The super-resolution job: read a stack, register it and leave out the dates that do not register,
super-resolve with a classic method or PIUNet (+ TTF), write the GeoTIFF(s) and the report."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from . import __version__, distributed
from . import params as P
from .baselines import default_psf, hr_validity, ibp, mean_bicubic
from .choices import SR_METHOD_DEFAULT, SR_METHODS, TTF_FITS
from .convention import default_kernel_size
from .degradation import gaussian_kernels
from .inference import predict
from .job_reports import sr_report, ttf_summary
from .job_support import MIN_LR_SIZE, input_paths, scale_and_device
from .atomic_files import atomic_outputs
from .outputs import RASTER_EXTENSIONS, check_output_path, output_dtype, output_nodata, write_geotiff
from .progress import Monitor, ensure_monitor
from .registration import register_stack
from .stack_io import FMASK_INVALID_VALUES, ImageSource, StackError, read_stack

if TYPE_CHECKING:
    from .registration import Registration
    from .ttf import TTFConfig


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
    from .ttf import TTFConfig

    mon = ensure_monitor(monitor)
    t0 = time.perf_counter()
    scale, dev, why = scale_and_device(scale, device)
    if method not in SR_METHODS:
        raise StackError(f"method must be one of {SR_METHODS}, got '{method}'")
    ttf_fit = TTFConfig.fit if ttf_fit is None else ttf_fit
    if ttf_fit not in TTF_FITS:
        raise StackError(f"TTF fit must be one of {TTF_FITS}, got '{ttf_fit}'")
    lrs = {k: v for k, v in (("lr_net", P.TTF_LR.check(ttf_lr)), ("lr_kernel", P.TTF_LR.check(ttf_kernel_lr))) if v}
    run = _Run(method, scale, dev, P.IBP_ITERATIONS.check(iterations), P.PSF_SIGMA.check(psf_sigma), kernel_bank,
               register, P.REGISTRATION_QUALITY.check(min_registration_quality), model_path, P.TILE.check(tile),
               TTFConfig(iterations=P.TTF_ITERATIONS.check(ttf_iterations), fit=ttf_fit, **lrs), ttf_per_tile)
    reference = P.REFERENCE.check(reference)
    _check_outputs(run, sources, output, uncertainty_output, kernel_output, report_html)
    procs, run.device = distributed.init_from_env(run.device)  # under torchrun: this process's share and device
    net, flow = _load_networks(run)
    stack = read_stack(sources, invalid_mask_values)
    sel = _select_frames(stack, run, reference, mon)
    mon.progress(0.1, "frames registered")
    mon.check()
    if net is not None:
        mon.info(f"device: {why}")
        hr, log_scale, ttf_kernel, ttf_res = _learned(net, flow, sel, run, mon)
    else:
        hr, log_scale, ttf_kernel, ttf_res = _classic(sel, run, mon), None, None, None
    params = {"scale": scale, "method": method, "iterations": run.iterations if method == "ibp" else None,
              "psf_sigma": run.psf_sigma, "kernel_bank": os.path.basename(kernel_bank) if kernel_bank else None,
              "register": register, "min_registration_quality": run.min_quality, "tile": run.tile,
              "invalid_mask_values": list(invalid_mask_values), "model": os.path.basename(run.model_path) if run.model_path else None,
              "ttf_iterations": run.ttf.iterations if method == "piunet+ttf" else None,
              "ttf_per_tile": bool(ttf_per_tile and run.tile > 0) if method == "piunet+ttf" else None,
              "ttf_lr": ttf_lr, "ttf_kernel_lr": ttf_kernel_lr, "ttf_fit": ttf_fit if method == "piunet+ttf" else None}
    paths = (output, uncertainty_output if log_scale is not None else None,
             kernel_output if ttf_kernel is not None else None, report_html)
    if procs.is_main:  # under torchrun every process has the whole result; one writes it
        seconds = _write(paths, stack, sel, run, params, hr, log_scale, ttf_kernel, ttf_res, t0)
    else:
        seconds = round(time.perf_counter() - t0, 3)
    mon.progress(1.0, f"wrote {output}")
    return {"output": output, "uncertainty": paths[1], "report": report_html, "kernel": paths[2], "method": method,
            "scale": scale, "reference": sel.reference_name, "images": stack.count, "images_used": int(sel.frames.shape[0]),
            "seconds": seconds}


@dataclass
class _Run:
    """The checked settings of one super-resolution run."""

    method: str
    scale: int
    device: torch.device
    iterations: int
    psf_sigma: float | None
    kernel_bank: str | None
    register: bool
    min_quality: float
    model_path: str | None
    tile: int
    ttf: "TTFConfig"
    ttf_per_tile: bool

    @property
    def learned(self) -> bool:
        return self.method.startswith("piunet")


@dataclass
class _Selected:
    """The frames a run uses (``(T', h, w)``, the reference at ``ref``), their shifts and kernels,
    and the registration of every frame read (None without registration)."""

    frames: torch.Tensor
    valid: torch.Tensor
    ref: int
    reference_name: str
    shifts: torch.Tensor | None
    kernels: torch.Tensor | None
    registration: "Registration | None"
    used: torch.Tensor


def _check_outputs(run: _Run, sources, output, uncertainty_output, kernel_output, report_html) -> None:
    """Before any reading: the settings that exclude each other, the model to use, the output paths."""
    from .model_files import base_model_path

    if run.kernel_bank and run.method != "ibp":
        raise StackError("a kernel bank is used by the IBP method only")
    if run.kernel_bank and run.psf_sigma is not None:
        raise StackError("give either a PSF sigma or a kernel bank for IBP, not both")
    if run.learned and not run.model_path:
        run.model_path = base_model_path(run.scale)
        if run.model_path is None:
            raise StackError(f"method '{run.method}' needs a trained model file (no base model is shipped for x{run.scale})")
    inputs = input_paths(sources) + [p for p in (run.model_path, run.kernel_bank) if p]
    for out in (output, uncertainty_output, kernel_output):
        if out:
            check_output_path(out, inputs, RASTER_EXTENSIONS)
    if report_html:
        check_output_path(report_html, inputs)
    if uncertainty_output and os.path.abspath(uncertainty_output) == os.path.abspath(output):
        raise StackError("the uncertainty output must differ from the SR output")


def _load_networks(run: _Run):
    """PIUNet and, for TTF, the kernel prior (None, None for the classic methods)."""
    from .fkp import default_fkp_path, load_fkp
    from .model_files import load_model

    if not run.learned:
        return None, None
    net, _ = load_model(run.model_path, scale=run.scale, device=run.device)
    return net, load_fkp(default_fkp_path(run.scale), run.scale) if run.method == "piunet+ttf" else None


def _select_frames(stack, run: _Run, reference: int | None, mon: Monitor) -> _Selected:
    """Register every frame to the reference and keep those whose registration quality passes."""
    if min(stack.grid.width, stack.grid.height) < MIN_LR_SIZE:
        raise StackError(f"images of {stack.grid.width}x{stack.grid.height} pixels are too small (at least {MIN_LR_SIZE}x{MIN_LR_SIZE})")
    ref = stack.clearest_index() if reference is None else int(reference)
    if not 0 <= ref < stack.count:
        raise StackError(f"reference frame {ref} does not exist (the stack has {stack.count} images, numbered from 0)")
    kernels = _bank_kernels(run.kernel_bank, run.scale, stack.names) if run.kernel_bank else None
    mon.progress(0.05, f"read {stack.count} images of {stack.grid.width}x{stack.grid.height} px")
    mon.check()
    frames, valid = torch.from_numpy(stack.data), torch.from_numpy(stack.valid)
    used = torch.ones(stack.count, dtype=torch.bool)
    if not run.register:
        return _Selected(frames, valid, ref, stack.names[ref], None, kernels, None, used)
    reg = register_stack(frames, valid, ref)
    used = reg.kept(run.min_quality)
    used[ref] = True
    for name, d, q, u in zip(stack.names, reg.shifts.tolist(), reg.quality.tolist(), used.tolist()):
        mon.info(f"{name}: shift ({d[0]:+.2f}, {d[1]:+.2f}) LR px, registration quality {q:.2f}"
                 + ("" if u else f" < {run.min_quality:g}: left out (other land or light, or not alignable)"))
    return _Selected(frames[used], valid[used], int(used[:ref].sum()), stack.names[ref], reg.shifts[used],
                     None if kernels is None else kernels[used], reg, used)


def _learned(net, flow, sel: _Selected, run: _Run, mon: Monitor):
    """PIUNet (after TTF when ``flow`` is given): SR, log-scale, TTF kernel and TTF result."""
    from .ttf import finetune_per_tile, test_time_finetune

    if flow is not None and run.ttf_per_tile and run.tile > 0:
        out = finetune_per_tile(net, flow, sel.frames, sel.valid, sel.ref, run.tile, run.ttf, run.device, mon.sub(0.1, 0.95))
        mon.info("TTF per tile; centre tile: " + ttf_summary(out[3]))
        return out
    kernel = result = None
    if flow is not None:
        net, kernel, result = test_time_finetune(net, flow, sel.frames, sel.valid, sel.ref, run.ttf,
                                                 monitor=mon.sub(0.1, 0.6), device=run.device)
        distributed.same_as_rank0([*net.parameters(), kernel], run.device)  # under torchrun: one tuned network
        mon.info("TTF: " + ttf_summary(result))
    mon.progress(0.6, "predicting")
    hr, log_scale = predict(net, sel.frames, sel.valid, tile=run.tile, device=run.device, monitor=mon.sub(0.6, 0.95),
                            reference=sel.ref)
    return hr, log_scale, kernel, result


def _classic(sel: _Selected, run: _Run, mon: Monitor) -> torch.Tensor:
    if run.method == "bicubic":
        return mean_bicubic(sel.frames, sel.valid, run.scale, sel.shifts)
    kernel = sel.kernels if sel.kernels is not None else default_psf(run.scale) if run.psf_sigma is None \
        else gaussian_kernels(run.psf_sigma, run.psf_sigma, 0.0, default_kernel_size(run.scale), run.scale)
    return ibp(sel.frames, sel.valid, run.scale, sel.shifts, kernel, iterations=run.iterations, monitor=mon.sub(0.15, 0.95))


def _write(paths, stack, sel: _Selected, run: _Run, params: dict, hr, log_scale, ttf_kernel, ttf_res, t0: float) -> float:
    """SR raster, uncertainty, TTF kernel layer and report, all or none (returns the run's seconds)."""
    from .kernels import write_kernel_layer

    scale, reg = run.scale, sel.registration
    nodata = output_nodata(stack)
    covered = hr_validity(sel.valid, scale).numpy()
    tags = {
        "STACKSR_VERSION": __version__, "STACKSR_ALGORITHM": "superresolve", "STACKSR_METHOD": run.method,
        "STACKSR_SCALE": str(scale), "STACKSR_PARAMETERS": params, "STACKSR_INPUTS": stack.names,
        "STACKSR_REFERENCE": sel.reference_name,
        "STACKSR_SHIFTS": None if reg is None else [[round(v, 4) for v in d] for d in reg.shifts.tolist()],
        "STACKSR_REGISTRATION": None if reg is None else {
            n: {"quality": round(q, 4), "used": u} for n, q, u in zip(stack.names, reg.quality.tolist(), sel.used.tolist())},
    }
    grid = stack.grid.scaled(scale)
    # a Laplace distribution with scale b has standard deviation sqrt(2) * b (the raster and the report)
    spread = None if log_scale is None else np.sqrt(2.0) * np.exp(log_scale.numpy())
    with atomic_outputs(list(paths), ".tif") as (t_out, t_unc, t_ker, t_rep):
        out = np.where(covered, hr.numpy(), nodata).astype(output_dtype(nodata))
        write_geotiff(t_out, out, grid, nodata, tags, band_names=[f"{run.method} x{scale}"])
        if t_unc:
            std = np.where(covered, spread, nodata).astype(output_dtype(nodata))
            write_geotiff(t_unc, std, grid, nodata, {**tags, "STACKSR_PRODUCT": "uncertainty (std)"},
                          band_names=["uncertainty (standard deviation)"])
        if t_ker:
            write_kernel_layer(t_ker, ttf_kernel.numpy(), scale, f"TTF {sel.reference_name}", stack.grid)
        seconds = round(time.perf_counter() - t0, 3)
        if t_rep:
            sr_report(t_rep, hr, sel.frames[sel.ref], sel.valid[sel.ref], scale, ttf_kernel, ttf_res,
                      [("method", run.method), ("scale", f"x{scale}"),
                       ("images", f"{stack.count}: " + ", ".join(n if u else f"{n} (left out)"
                                                              for n, u in zip(stack.names, sel.used.tolist()))),
                       ("reference frame", sel.reference_name), ("images used (registration quality)", int(sel.frames.shape[0])),
                       ("device", str(run.device) if run.learned else "cpu"),
                       ("tile (input pixels)", run.tile if run.learned else "-"), ("seconds", seconds)],
                      sel.reference_name, spread, covered)
    return seconds


def _bank_kernels(path: str, scale: int, names: Sequence[str]) -> torch.Tensor:
    """The kernels ``(T, K, K)`` of a bank for the images ``names``, in their order (StackError if
    the bank is unreadable, of another scale, or misses an image)."""
    from .kernel_bank import KernelBank

    bank = KernelBank.load(path, scale=scale)
    index = {n: i for i, n in enumerate(bank.names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise StackError(f"kernel bank '{path}' has no kernel for '{missing[0]}' (it was estimated on other images)")
    return torch.from_numpy(bank.kernels[[index[n] for n in names]])
