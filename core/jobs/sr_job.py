"""The super-resolution job: read a stack, register it and leave out the dates that do not register,
super-resolve with a classic method or PIUNet (+ TTF), write the GeoTIFF(s) and the report."""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .. import __version__, distributed
from .. import params as P
from ..classic.agreement import agreement_weights
from ..classic.baselines import IBP_CANDIDATES, choose_ibp_iterations, classic_tiles, default_psf
from ..choices import SR_METHOD_DEFAULT, SR_METHODS, TTF_FITS
from ..convention import default_kernel_size
from ..degradation.operators import gaussian_kernels
from ..heap import heap_reuse
from .job_reports import sr_report, ttf_summary, validation_rows
from .job_support import MIN_LR_SIZE, input_paths, scale_and_device
from ..io.atomic_files import atomic_outputs
from ..io.outputs import (RASTER_EXTENSIONS, GeoTiffWriter, check_free_space, output_nodata, plan_outputs, raster_bytes,
                      same_file)
from ..progress import Monitor, ensure_monitor
from ..classic.registration import MAX_WINDOW, register_source, typical_reference
from ..io.stack_io import FMASK_INVALID_VALUES, NOTHING_VALID, ImageSource, StackError, StackReader
from ..io.windows import StackStats, Subset, best_window, read_window, stack_stats

if TYPE_CHECKING:
    from ..classic.registration import Registration
    from .validation import ValidationResult
    from ..learned.ttf import TTFConfig


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
    from ..learned.ttf import TTFConfig

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
        agreement, weights = _agreement(sel, frames, valid, mon)
        if method in ("ibp", "auto") and run.iterations is None:
            run.iterations = _choose_iterations(sel, run, frames, valid, weights, mon.sub(0.1, 0.15))
        validation = _validate(sel, run, frames, valid, weights, net, flow, mon)
        del frames, valid
        if method == "auto":
            _apply_choice(run, sel, validation, mon)
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
        seconds = _run_and_write(paths if procs.is_main else (None,) * 4, reader, sel, run, params, net, flow, mon, t0,
                                 agreement, validation, earlier_steps)
    mon.progress(1.0, f"wrote {output}")
    return {"output": output, "uncertainty": paths[1], "report": report_html, "kernel": paths[2], "method": method,
            "requested_method": requested, "scale": scale, "reference": sel.reference_name, "images": reader.count,
            "images_used": sel.source.count, "seconds": seconds,
            "validation": None if validation is None else validation.to_dict(method)}


@dataclass
class _Run:
    """The checked settings of one super-resolution run."""

    method: str
    scale: int
    device: torch.device
    iterations: int | None
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
    """The frames a run uses (a source of :mod:`windows` with their statistics; the reference at
    ``ref``), their shifts and kernels, the window it registers, calibrates and reports on, and the
    registration of every frame read (None without registration)."""

    source: Subset
    stats: StackStats
    ref: int
    reference_name: str
    shifts: torch.Tensor | None
    kernels: torch.Tensor | None
    registration: "Registration | None"
    used: torch.Tensor
    window: tuple[slice, slice]


def _check_outputs(run: _Run, sources, output, uncertainty_output, kernel_output, report_html) -> None:
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


def _load_networks(run: _Run):
    """PIUNet and, for TTF, the kernel prior (None, None for the classic methods)."""
    from ..degradation.fkp import default_fkp_path, load_fkp
    from ..learned.model_files import load_model

    if not (run.learned or (run.method == "auto" and run.model_path)):
        return None, None
    net, _ = load_model(run.model_path, scale=run.scale, device=run.device)
    return net, load_fkp(default_fkp_path(run.scale), run.scale) if run.method in ("piunet+ttf", "auto") else None


def _select_frames(reader: StackReader, stats: StackStats, run: _Run, reference: int | None, mon: Monitor) -> _Selected:
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
    return _Selected(Subset(reader, keep), stats.subset(keep), int(used[:ref].sum()), reader.names[ref], shifts,
                     None if kernels is None else kernels[used], reg, used, window)


def _learned(net, flow, sel: _Selected, run: _Run, sink, mon: Monitor):
    """PIUNet (after TTF when ``flow`` is given) into ``sink``; returns the TTF kernel and result."""
    from ..learned.inference import predict_source, stack_context
    from ..learned.ttf import finetune_per_tile, test_time_finetune

    if flow is not None and run.ttf_per_tile and run.tile > 0:
        kernel, result = finetune_per_tile(net, flow, sel.source, sel.ref, run.tile, sink, run.ttf, run.device,
                                           mon.sub(0.1, 0.95))
        mon.info("TTF per tile; centre tile: " + ttf_summary(result))
        return kernel, result
    kernel = result = None
    if flow is not None:
        # calibrated on the registration window, with the whole stack's normalisation and pools
        frames, valid = read_window(sel.source, *sel.window)
        context = stack_context(net.to(run.device).eval(), sel.source, sel.stats, run.device)
        net, kernel, result = test_time_finetune(net, flow, frames, valid, sel.ref, run.ttf, monitor=mon.sub(0.1, 0.6),
                                                 device=run.device, stats=sel.stats, context=context)
        distributed.same_as_rank0([*net.parameters(), kernel], run.device)  # under torchrun: one tuned network
        mon.info("TTF: " + ttf_summary(result))
    mon.progress(0.6, "predicting")
    predict_source(net, sel.source, sel.stats, sink, run.tile, run.device, mon.sub(0.6, 0.95), sel.ref, sel.shifts)
    return kernel, result


def _classic_kernels(sel: _Selected, run: _Run) -> torch.Tensor:
    """The classic methods' PSF: the bank's kernels of the frames used, a given sigma, or the default."""
    return sel.kernels if sel.kernels is not None else default_psf(run.scale) if run.psf_sigma is None \
        else gaussian_kernels(run.psf_sigma, run.psf_sigma, 0.0, default_kernel_size(run.scale), run.scale)


def _agreement(sel: _Selected, frames: torch.Tensor, valid: torch.Tensor,
               mon: Monitor) -> tuple[tuple[int, torch.Tensor] | None, torch.Tensor | None]:
    """Robust fusion's settings for IBP (the reference's index and the frames' robust spreads, measured
    on the registration window ``frames`` so every tile judges alike) and that window's weights; None
    without registered frames to weigh."""
    if sel.shifts is None or sel.source.count < 2:
        return None, None
    weights, spreads = agreement_weights(frames, valid, sel.ref, sel.shifts, float(sel.stats.frame_means[sel.ref]))
    share = ((weights > 0.5) & valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)
    mon.info("robust fusion: share of each image's pixels that agree with the reference date "
             + ", ".join(f"{s:.2f}" for s in share.tolist()))
    return (sel.ref, spreads), weights


def _choose_iterations(sel: _Selected, run: _Run, frames: torch.Tensor, valid: torch.Tensor,
                       weights: torch.Tensor | None, mon: Monitor) -> int:
    """IBP's iteration count for this stack, by held-out validation on the registration window ``frames``
    (one count for every tile, so tiles match the untiled result)."""
    count, errors = choose_ibp_iterations(frames, valid, run.scale, sel.shifts, _classic_kernels(sel, run),
                                          sel.stats.frame_means, weights, monitor=mon)
    rms = ", ".join(f"{k}: {e ** 0.5:.4g}" for k, e in zip(sorted(IBP_CANDIDATES), errors))
    mon.info(f"IBP iterations: {count} (held-out RMS error by iterations on the "
             f"{valid.shape[-2]}x{valid.shape[-1]} px window: {rms})")
    return count


def _validate(sel: _Selected, run: _Run, frames: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor | None,
              net, flow, mon: Monitor) -> "ValidationResult | None":
    """Held-out validation (:mod:`validation`) on the central part of the registration window: of every
    candidate for ``auto``, else of the method asked for; each against the reference date upsampled alone.
    None when only the reference is used (nothing to hold out)."""
    from .method_choice import Setup, central_window, choose_method

    if sel.source.count < 2:
        mon.info("quality estimate: none, only the reference image is used (nothing to hold out)")
        return None
    rows, cols = central_window(tuple(frames.shape[-2:]))
    f, v = frames[:, rows, cols], valid[:, rows, cols]
    w = None if weights is None else weights[:, rows, cols]
    auto = run.method == "auto"
    psf = default_psf(run.scale) if run.psf_sigma is None and (auto or sel.kernels is None) else _classic_kernels(sel, run)
    if auto and run.psf_sigma is not None:
        psf = gaussian_kernels(run.psf_sigma, run.psf_sigma, 0.0, default_kernel_size(run.scale), run.scale)
    setup = Setup(run.scale, sel.ref, sel.shifts, psf, run.iterations or IBP_CANDIDATES[-1], sel.shifts is not None,
                  sel.kernels if auto else None, net if (auto or run.learned) else None, flow, run.ttf,
                  _Quiet(mon))
    only = None if auto else (run.method,)
    mon.progress(0.15, "validating " + ("every method" if auto else run.method) + " on held-out pixels")
    result = choose_method(setup, f, v, sel.kernels if sel.kernels is not None else psf, w, only, check=mon.check)
    for sc in result.scores:
        mon.info(f"validation: {sc.method}: held-out RMS error {sc.rmse:.5g}, {sc.gain_db:+.2f} dB "
                 f"(+- {sc.gain_spread_db:.2f}) over the reference image alone ({sc.seconds:.1f} s)")
    for sc in result.coarse:
        mon.info(f"validation one scale down: {sc.method}: RMS error {sc.rmse:.5g} on the reference image's own "
                 f"pixels, {sc.gain_db:+.2f} dB over the reference image alone ({sc.seconds:.1f} s)")
    for note in result.notes:
        mon.info("validation: " + note)
    return result


class _Quiet(Monitor):
    """The job's cancel for the validation's runs, without their progress (each would restart the bar)."""

    def __init__(self, job: Monitor):
        super().__init__()
        self.job = job

    def is_cancelled(self) -> bool:
        return self.job.is_cancelled()


def _apply_choice(run: _Run, sel: _Selected, validation: "ValidationResult | None", mon: Monitor) -> None:
    """``auto``: the method the validation ranks first (IBP with the kernel bank counts as IBP)."""
    from .method_choice import pick, reason

    chosen = pick(validation)
    why = f"auto chose {chosen}: {reason(validation, chosen)}"
    mon.info(why)
    if validation is not None:
        validation.notes.append(why)
    if chosen == "ibp-bank":
        chosen = "ibp"
    elif chosen == "ibp":
        sel.kernels = None  # IBP with the default PSF did better than with the estimated kernels
    run.method = chosen


def _classic(sel: _Selected, run: _Run, sink, mon: Monitor, agreement: tuple[int, torch.Tensor] | None) -> None:
    classic_tiles(sel.source, sel.stats, run.method, run.scale, sel.shifts, sink, _classic_kernels(sel, run),
                  run.iterations, run.tile, mon.sub(0.3, 0.95), agreement, sel.ref)


class _FileSink:
    """Tiles into the SR (and uncertainty) GeoTIFFs, nodata where no valid input pixel covers them;
    the part of each tile inside ``look`` (an HR window) is kept for the report."""

    def __init__(self, out: GeoTiffWriter | None, unc: GeoTiffWriter | None, nodata: float, look: tuple[slice, slice]):
        self.out, self.unc, self.nodata, self.look = out, unc, nodata, look
        h, w = (k.stop - k.start for k in look)
        self.sr, self.std, self.covered = np.full((h, w), np.nan), np.full((h, w), np.nan), np.zeros((h, w), bool)

    def __call__(self, dest, outputs, covered) -> None:
        cov = covered.numpy()
        sr = outputs[0].numpy()
        # a Laplace distribution with scale b has standard deviation sqrt(2) * b (the raster and the report)
        std = np.sqrt(2.0) * np.exp(outputs[1].numpy()) if len(outputs) > 1 else None
        if self.out is not None:
            self.out.write(*dest, np.where(cov, sr, self.nodata))
        if self.unc is not None and std is not None:
            self.unc.write(*dest, np.where(cov, std, self.nodata))
        inter = [slice(max(d.start, k.start), min(d.stop, k.stop)) for d, k in zip(dest, self.look)]
        if all(i.start < i.stop for i in inter):
            src = tuple(slice(i.start - d.start, i.stop - d.start) for i, d in zip(inter, dest))
            dst = tuple(slice(i.start - k.start, i.stop - k.start) for i, k in zip(inter, self.look))
            self.sr[dst], self.covered[dst] = sr[src], cov[src]
            if std is not None:
                self.std[dst] = std[src]


def _run_and_write(paths, reader: StackReader, sel: _Selected, run: _Run, params: dict, net, flow, mon: Monitor,
                   t0: float, agreement: tuple[int, torch.Tensor] | None, validation: "ValidationResult | None",
                   earlier_steps: Sequence[tuple[str, float]] = ()) -> float:
    """Run the method tile by tile into the SR raster, uncertainty, TTF kernel layer and report, all or
    none (``paths`` None: compute this process's share, write nothing); returns the run's seconds."""
    from ..degradation.kernels import write_kernel_layer

    scale, reg = run.scale, sel.registration
    nodata = output_nodata(reader)
    tags = {
        "STACKSR_VERSION": __version__, "STACKSR_ALGORITHM": "superresolve", "STACKSR_METHOD": run.method,
        "STACKSR_SCALE": str(scale), "STACKSR_PARAMETERS": params, "STACKSR_INPUTS": reader.names,
        "STACKSR_REFERENCE": sel.reference_name,
        "STACKSR_SHIFTS": None if reg is None else [[round(v, 4) for v in d] for d in reg.shifts.tolist()],
        "STACKSR_REGISTRATION": None if reg is None else {
            n: {"quality": round(q, 4), "used": u} for n, q, u in zip(reader.names, reg.quality.tolist(), sel.used.tolist())},
        "STACKSR_VALIDATION": None if validation is None else validation.to_dict(run.method),
    }
    grid = reader.grid.scaled(scale)
    look = tuple(slice(k.start * scale, k.stop * scale) for k in sel.window)
    with atomic_outputs(list(paths), ".tif") as (t_out, t_unc, t_ker, t_rep):
        with contextlib.ExitStack() as files:
            out = files.enter_context(GeoTiffWriter(t_out, grid, 1, nodata, tags, [f"{run.method} x{scale}"])) if t_out else None
            unc = files.enter_context(GeoTiffWriter(t_unc, grid, 1, nodata, {**tags, "STACKSR_PRODUCT": "uncertainty (std)"},
                                                    ["uncertainty (standard deviation)"])) if t_unc else None
            sink = _FileSink(out, unc, nodata, look)
            if net is not None:
                ttf_kernel, ttf_res = _learned(net, flow, sel, run, sink, mon)
            else:
                _classic(sel, run, sink, mon, agreement)
                ttf_kernel = ttf_res = None
        if t_ker:
            write_kernel_layer(t_ker, ttf_kernel.numpy(), scale, f"TTF {sel.reference_name}", reader.grid)
        seconds = round(time.perf_counter() - t0, 3)
        if t_rep:
            ref_frame, ref_valid = read_window(sel.source, *sel.window, frames=[sel.ref])
            whole = all(k.start == 0 and k.stop == n for k, n in zip(sel.window, (reader.height, reader.width)))
            shown = [] if whole else [("report figures shown on (input pixels)",
                                       f"rows {sel.window[0].start}-{sel.window[0].stop - 1}, "
                                       f"columns {sel.window[1].start}-{sel.window[1].stop - 1}")]
            sr_report(t_rep, torch.from_numpy(sink.sr).float(), ref_frame[0], ref_valid[0], scale, ttf_kernel, ttf_res,
                      [("method", run.method), ("scale", f"x{scale}"),
                       ("images", f"{reader.count}: " + ", ".join(n if u else f"{n} (left out)"
                                                               for n, u in zip(reader.names, sel.used.tolist()))),
                       ("reference frame", sel.reference_name), ("images used (registration quality)", sel.source.count),
                       *_model_rows(run), ("device", str(run.device) if run.learned else "cpu"),
                       ("tile (input pixels)", run.tile), *_step_rows(earlier_steps, seconds), *shown,
                       *validation_rows(validation, run.method)],
                      sel.reference_name, sink.std if t_unc else None, sink.covered)
    return seconds


def _model_rows(run: _Run) -> list[tuple[str, str]]:
    """The report's rows on the network and the kernel bank: which file, and whether the result used it."""
    from ..learned.model_files import base_model_path

    rows = []
    if run.model_path:
        base = base_model_path(run.scale)
        name = (f"the shipped base model x{run.scale} ({os.path.basename(run.model_path)})"
                if base and os.path.exists(base) and same_file(base, run.model_path) else run.model_path)
        rows.append(("model", name + ("" if run.learned else " (validated by auto, not used)")))
    if run.kernel_bank:
        rows.append(("kernel bank", run.kernel_bank + ("" if run.method == "ibp" else " (validated by auto, not used)")))
    return rows


def _step_rows(earlier_steps: Sequence[tuple[str, float]], seconds: float) -> list[tuple[str, object]]:
    """``seconds`` of this step, after the steps of the job that came before it (the chain's) and their total."""
    if not earlier_steps:
        return [("seconds", seconds)]
    n = len(earlier_steps) + 1
    rows = [(f"step {i}/{n}", f"{what} ({sec:.1f} s)") for i, (what, sec) in enumerate(earlier_steps, 1)]
    return rows + [(f"step {n}/{n}", f"super-resolution ({seconds:.1f} s)"),
                   ("seconds, whole job", round(seconds + sum(sec for _, sec in earlier_steps), 1))]


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
