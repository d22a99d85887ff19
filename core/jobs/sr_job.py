"""The super-resolution job: read a stack, register it and leave out the dates that do not register,
super-resolve with a classic method or PIUNet (+ TTF), write the GeoTIFF(s) and the report."""
from __future__ import annotations

import os
import time
from typing import Sequence

import torch

from .. import distributed
from .. import params as P
from ..choices import SR_METHOD_DEFAULT, SR_METHODS, TTF_FITS
from ..classic.registration import MAX_WINDOW, register_source, typical_reference
from ..heap import heap_reuse
from ..io.outputs import RASTER_EXTENSIONS, check_free_space, output_nodata, plan_outputs, raster_bytes
from ..io.stack_io import FMASK_INVALID_VALUES, ImageSource, StackError, StackReader
from ..io.whole_reads import NOTHING_VALID
from ..io.windows import StackStats, Subset, best_window, read_window, stack_stats
from ..progress import Monitor, ensure_monitor
from .job_support import MIN_LR_SIZE, input_paths, scale_and_device
from .sr_choice import apply_auto_choice, ibp_iterations, robust_fusion, validate_window
from .sr_output import run_and_write
from .sr_settings import SelectedFrames, SRSettings


@heap_reuse()
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
    earlier_steps: Sequence[tuple[str, float]] = (),
) -> dict:
    """Super-resolve a stack and write a georeferenced GeoTIFF (``report_html``: settings, TTF
    loss curve and kernel, and how well the result reproduces the reference frame; ``earlier_steps``: what a
    job that ends with this one did before, ``(what, seconds)`` each, for the report).

    ``method``: "bicubic" (registered mean of bicubic), "ibp", "piunet" (a trained
    model from ``model_path``, by default the shipped base model, in ``tile``-pixel tiles when ``tile`` > 0; optionally
    its uncertainty as a standard-deviation raster) or "piunet+ttf" (the model first
    finetuned on this stack for ``ttf_iterations``, calibrated once on a crop and
    applied to every tile, or with ``ttf_per_tile`` finetuned on every tile separately;
    ``ttf_lr`` / ``ttf_kernel_lr``: learning rates of the network tail and of the kernel latent
    (None: the benchmarked defaults of :class:`ttf.TTFConfig`; larger ones over-fit); ``ttf_fit``: what
    the finetuned output must explain, one of :data:`choices.TTF_FITS` (None: every frame of the stack);
    ``kernel_output`` receives the TTF kernel (of the centre tile when per tile) as a layer). ``reference``: 0-based frame whose
    grid the classic methods align to (None: the clearest, and of equally clear ones the one the others agree with
    most: :func:`registration.typical_reference`). ``psf_sigma``: isotropic
    PSF sigma in HR pixels assumed by IBP (None: :func:`baselines.default_psf`); ``iterations``: IBP's, None (the
    default) chosen per stack by held-out validation (:func:`baselines.choose_ibp_iterations`); ``kernel_bank``: IBP
    uses each image's kernel from this bank (the Estimate kernels output, same images) instead. Numeric settings left
    None take their defaults from :mod:`params`, which also bounds them (:class:`errors.ParameterError`).
    """
    from ..learned.ttf_config import TTFConfig

    mon = ensure_monitor(monitor)
    t0 = time.perf_counter()
    scale, dev, why = scale_and_device(scale, device)
    if method not in SR_METHODS:
        raise StackError(f"method must be one of {SR_METHODS}, got '{method}'")
    ttf_fit = TTFConfig.fit if ttf_fit is None else ttf_fit
    if ttf_fit not in TTF_FITS:
        raise StackError(f"TTF fit must be one of {TTF_FITS}, got '{ttf_fit}'")
    lrs = {k: v for k, v in (("lr_net", P.TTF_LR.check(ttf_lr)), ("lr_kernel", P.TTF_LR.check(ttf_kernel_lr))) if v}
    run = SRSettings(method, scale, dev, P.IBP_ITERATIONS.check(iterations), P.PSF_SIGMA.check(psf_sigma), kernel_bank,
               register, P.REGISTRATION_QUALITY.check(min_registration_quality), model_path, P.TILE.check(tile),
               TTFConfig(iterations=P.TTF_ITERATIONS.check(ttf_iterations), fit=ttf_fit, **lrs), ttf_per_tile)
    reference = P.REFERENCE.check(reference)
    requested = method
    _check_outputs(run, sources, output, uncertainty_output, kernel_output, report_html)
    procs, run.device = distributed.init_from_env(run.device)  # under torchrun: this process's share and device
    net, flow = _load_networks(run)
    with StackReader(sources, invalid_mask_values) as reader:  # windows are read as the work needs them
        check_sr_space(reader, scale, output, uncertainty_output)
        stats = stack_stats(reader, mon.sub(0.05, 0.08))
        for line in reader.warnings():
            mon.info(line)
        if not stats.counts.any():
            raise StackError(NOTHING_VALID)
        sel = _select_frames(reader, stats, run, reference, mon)
        mon.progress(0.1, "frames registered")
        mon.check()
        # robust fusion's constants, IBP's iteration count and the validation, from one read of the window
        frames, valid = read_window(sel.source, *sel.window)
        agreement, weights = robust_fusion(sel, frames, valid, mon)
        if method in ("ibp", "auto") and run.iterations is None:
            run.iterations = ibp_iterations(sel, run, frames, valid, weights, mon.sub(0.1, 0.15))
        validation = validate_window(sel, run, frames, valid, weights, net, flow, mon)
        del frames, valid
        if method == "auto":
            apply_auto_choice(run, sel, validation, mon)
            if not run.learned:
                net = flow = None
        method = run.method
        mon.progress(0.3 if run.learned else 0.15, "validated")
        if method != "ibp":
            agreement = None
        params = {"scale": scale, "method": method, "requested_method": requested,
                  "iterations": run.iterations if method == "ibp" else None,
                  "robust_fusion": agreement is not None if method == "ibp" else None,
                  "psf_sigma": run.psf_sigma, "kernel_bank": os.path.basename(kernel_bank) if kernel_bank else None,
                  "register": register, "min_registration_quality": run.min_quality, "tile": run.tile,
                  "invalid_mask_values": list(invalid_mask_values), "model": os.path.basename(run.model_path) if run.model_path else None,
                  "ttf_iterations": run.ttf.iterations if method == "piunet+ttf" else None,
                  "ttf_per_tile": bool(ttf_per_tile and run.tile > 0) if method == "piunet+ttf" else None,
                  "ttf_lr": ttf_lr, "ttf_kernel_lr": ttf_kernel_lr, "ttf_fit": ttf_fit if method == "piunet+ttf" else None}
        paths = (output, uncertainty_output if run.learned else None,
                 kernel_output if flow is not None else None, report_html)
        # under torchrun every process computes its share of the tiles and rank 0 writes them all
        seconds = run_and_write(paths if procs.is_main else (None,) * 4, reader, sel, run, params, net, flow, mon, t0,
                                 agreement, validation, earlier_steps)
    mon.progress(1.0, f"wrote {output}")
    return {"output": output, "uncertainty": paths[1], "report": report_html, "kernel": paths[2], "method": method,
            "requested_method": requested, "scale": scale, "reference": sel.reference_name, "images": reader.count,
            "images_used": sel.source.count, "seconds": seconds,
            "validation": None if validation is None else validation.to_dict(method)}


def _check_outputs(run: SRSettings, sources, output, uncertainty_output, kernel_output, report_html) -> None:
    """Before any reading: the settings that exclude each other, the model to use, the output paths."""
    from ..learned.model_files import base_model_path

    if run.kernel_bank and run.method not in ("ibp", "auto"):
        raise StackError("a kernel bank is used by the IBP method only")
    if run.kernel_bank and run.psf_sigma is not None:
        raise StackError("give either a PSF sigma or a kernel bank for IBP, not both")
    if (run.learned or run.method == "auto") and not run.model_path:
        run.model_path = base_model_path(run.scale)  # None: auto chooses among the classic methods
        if run.model_path is None and run.learned:
            raise StackError(f"method '{run.method}' needs a trained model file (no base model is shipped for x{run.scale})")
    inputs = input_paths(sources) + [p for p in (run.model_path, run.kernel_bank) if p]
    plan_outputs([("super-resolved raster", output, RASTER_EXTENSIONS),
                  ("uncertainty raster", uncertainty_output, RASTER_EXTENSIONS),
                  ("TTF kernel layer", kernel_output, RASTER_EXTENSIONS), ("report", report_html, None)], inputs)


def check_sr_space(reader: StackReader, scale: int, output: str | None, uncertainty_output: str | None) -> None:
    """The super-resolved and uncertainty rasters must fit on their disks: checked before the statistics pass,
    which alone reads the whole stack."""
    n = raster_bytes(reader.width * scale, reader.height * scale, 1, output_nodata(reader))
    check_free_space([(output, n), (uncertainty_output, n)])


def _load_networks(run: SRSettings):
    """PIUNet and, for TTF, the kernel prior (None, None for the classic methods)."""
    from ..degradation.fkp import default_fkp_path, load_fkp
    from ..learned.model_files import load_model

    if not (run.learned or (run.method == "auto" and run.model_path)):
        return None, None
    net, _ = load_model(run.model_path, scale=run.scale, device=run.device)
    return net, load_fkp(default_fkp_path(run.scale), run.scale) if run.method in ("piunet+ttf", "auto") else None


def _select_frames(reader: StackReader, stats: StackStats, run: SRSettings, reference: int | None, mon: Monitor) -> SelectedFrames:
    """Register every frame to the reference and keep those whose registration quality passes."""
    if min(reader.width, reader.height) < MIN_LR_SIZE:
        raise StackError(f"images of {reader.width}x{reader.height} pixels are too small (at least {MIN_LR_SIZE}x{MIN_LR_SIZE})")
    window = best_window(stats, reader.height, reader.width, MAX_WINDOW)
    if reference is None:
        ref, corr = typical_reference(stats.clear_fraction, lambda: read_window(reader, *window))
        if corr:
            mon.info(f"reference: {reader.names[ref]}, of {len(corr)} images equally clear the one the others agree "
                     f"with most (correlation with the images' median {max(corr):.3f}; the least typical "
                     f"{min(corr):.3f})")
    else:
        ref = int(reference)
    if not 0 <= ref < reader.count:
        raise StackError(f"reference frame {ref} does not exist (the stack has {reader.count} images, numbered from 0)")
    if stats.counts[ref] == 0:  # it would leave every good date out as other land and write a raster of nodata
        raise StackError(f"the reference image '{reader.names[ref]}' has no valid pixel (all nodata, masked or "
                         "implausible); choose another reference, or leave it empty for the clearest image")
    kernels = _bank_kernels(run.kernel_bank, run.scale, reader.names) if run.kernel_bank else None
    mon.progress(0.05, f"opened {reader.count} images of {reader.width}x{reader.height} px")
    mon.check()
    used = torch.ones(reader.count, dtype=torch.bool)
    reg = shifts = None
    if run.register:
        reg = register_source(reader, stats, ref, window, monitor=mon)
        used = reg.kept(run.min_quality)
        used[ref] = True
        shifts = reg.shifts[used]
        empty = stats.counts == 0
        used &= torch.from_numpy(~empty)
        for t, (name, d, q, u) in enumerate(zip(reader.names, reg.shifts.tolist(), reg.quality.tolist(), used.tolist())):
            if empty[t]:
                mon.info(f"{name}: no valid pixel (all nodata or masked): left out")
                continue
            mon.info(f"{name}: shift ({d[0]:+.2f}, {d[1]:+.2f}) LR px, registration quality {q:.2f}"
                     + ("" if u else f" < {run.min_quality:g}: left out (other land or light, or not alignable)"))
    keep = [int(i) for i in torch.nonzero(used)[:, 0]]
    if reg is not None and len(keep) == 1 and reader.count > 1:
        mon.info(f"WARNING: every image but the reference {reader.names[ref]} was left out (none registers to it with "
                 f"quality {run.min_quality:g}): the result comes from that one image. If the reference is an outlier "
                 "date, give another one (reference), or keep all images (minimum registration quality 0)")
    return SelectedFrames(Subset(reader, keep), stats.subset(keep), int(used[:ref].sum()), reader.names[ref], shifts,
                     None if kernels is None else kernels[used], reg, used, window)


def _bank_kernels(path: str, scale: int, names: Sequence[str]) -> torch.Tensor:
    """The kernels ``(T, K, K)`` of a bank for the images ``names``, in their order (StackError if
    the bank is unreadable, of another scale, or misses an image)."""
    from ..io.kernel_bank import KernelBank

    bank = KernelBank.load(path, scale=scale)
    index = {n: i for i, n in enumerate(bank.names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise StackError(f"kernel bank '{path}' has no kernel for '{missing[0]}' (it was estimated on other images)")
    return torch.from_numpy(bank.kernels[[index[n] for n in names]])
