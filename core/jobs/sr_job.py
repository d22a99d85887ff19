"""The super-resolution job: read a stack, register it and leave out the dates that do not register,
super-resolve with a classic method or PIUNet (+ TTF), write the GeoTIFF(s) and the report."""
from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Sequence

import torch

from .. import distributed
from ..classic.registration import MAX_WINDOW, register_source, typical_reference
from ..choices import IBP_METHODS, TTF_METHODS
from ..heap import heap_reuse
from ..job_settings import SuperResolveSettings
from ..io.outputs import RASTER_EXTENSIONS, check_free_space, output_nodata, plan_outputs, raster_bytes
from ..io.stack_io import ImageSource, StackError, StackReader
from ..io.whole_reads import NOTHING_VALID
from ..io.windows import StackStats, Subset, best_window, read_window, stack_stats
from ..progress import Monitor, ensure_monitor
from .job_support import MIN_LR_SIZE, input_paths, scale_and_device
from .sr_choice import apply_auto_choice, ibp_iterations, robust_fusion, validate_window
from .sr_output import run_and_write
from .sr_run import SelectedFrames, SRRun


@heap_reuse()
def run_superresolve(sources: Sequence[ImageSource], settings: SuperResolveSettings, monitor: Monitor | None = None,
                     earlier_steps: Sequence[tuple[str, float]] = ()) -> dict:
    """Super-resolve a stack and write a georeferenced GeoTIFF, with ``settings`` (:class:`SuperResolveSettings`,
    whose fields say what each setting does; recorded whole in the raster's metadata and the report).
    ``earlier_steps``: what a job that ends with this one did before, ``(what, seconds)`` each, for the report.

    The methods: "bicubic" (registered mean of bicubic), "bicubic-ref" (the reference date alone), "ibp", "piunet"
    (a trained model, by default the shipped base model of the scale, in tiles), "piunet+ttf" (the model first
    finetuned on this stack, calibrated once on a crop and applied to every tile, or finetuned on every tile) and
    "blend" (the mean of IBP and PIUNet + TTF, :func:`method_choice.blend`) and "auto" (the one that validates best,
    :mod:`method_choice`). Without a given reference the classic methods align
    to the clearest frame, of equally clear ones the one the others agree with most
    (:func:`registration.typical_reference`); IBP's iteration count left None is chosen per stack by held-out
    validation (:func:`baselines.choose_ibp_iterations`). Settings out of range or that exclude each other are
    refused before anything is read (:class:`errors.ParameterError`, :class:`errors.StackError`).
    """
    from ..learned.ttf_config import TTFConfig

    mon = ensure_monitor(monitor)
    t0 = time.perf_counter()
    s = settings.checked()
    scale, dev, why = scale_and_device(s.scale, s.device)
    s = replace(s, scale=scale)
    lrs = {k: v for k, v in (("lr_net", s.ttf_lr), ("lr_kernel", s.ttf_kernel_lr)) if v}
    run = SRRun(s, s.method, dev, s.iterations, s.model_path,
                TTFConfig(iterations=s.ttf_iterations, fit=s.ttf_fit, **lrs))
    _check_outputs(run, sources)
    procs, run.device = distributed.init_from_env(run.device)  # under torchrun: this process's share and device
    net, flow = _load_networks(run)
    with StackReader(sources, s.invalid_mask_values) as reader:  # windows are read as the work needs them
        check_sr_space(reader, scale, s.output, s.uncertainty_output)
        stats = stack_stats(reader, mon.sub(0.05, 0.08))
        for line in reader.warnings():
            mon.info(line)
        if not stats.counts.any():
            raise StackError(NOTHING_VALID)
        sel = _select_frames(reader, stats, run, s.reference, mon)
        mon.progress(0.1, "frames registered")
        mon.check()
        # robust fusion's constants, IBP's iteration count and the validation, from one read of the window
        frames, valid = read_window(sel.source, *sel.window)
        agreement, weights = robust_fusion(sel, frames, valid, mon)
        if s.method in (*IBP_METHODS, "auto") and run.iterations is None:
            run.iterations = ibp_iterations(sel, run, frames, valid, weights, mon.sub(0.1, 0.15))
        validation = validate_window(sel, run, frames, valid, weights, net, flow, mon)
        del frames, valid
        if s.method == "auto":
            apply_auto_choice(run, sel, validation, mon)
            if not run.learned:
                net = flow = None
        method = run.method
        mon.progress(0.3 if run.learned else 0.15, "validated")
        if not run.ibp_used:
            agreement = None
        paths = (s.output, s.uncertainty_output if run.learned else None,
                 s.kernel_output if flow is not None else None, s.report_html)
        # under torchrun every process computes its share of the tiles and rank 0 writes them all
        seconds = run_and_write(paths if procs.is_main else (None,) * 4, reader, sel, run, _record(run, agreement),
                                net, flow, mon, t0, agreement, validation, earlier_steps)
    mon.progress(1.0, f"wrote {s.output}")
    return {"output": s.output, "uncertainty": paths[1], "report": s.report_html, "kernel": paths[2], "method": method,
            "requested_method": s.method, "scale": scale, "reference": sel.reference_name, "images": reader.count,
            "images_used": sel.source.count, "seconds": seconds,
            "validation": None if validation is None else validation.to_dict(method)}


def _record(run: SRRun, agreement) -> dict:
    """The raster's STACKSR_PARAMETERS: every setting as given (:meth:`JobSettings.record`), then what the run
    decided, under the names earlier versions wrote (``method`` is the method used, ``iterations`` IBP's count
    used, None where the method has none)."""
    s, method = run.settings, run.method
    ttf = run.ttf_used
    return {**s.record(), "method": method, "requested_method": s.method,
            "iterations": run.iterations if run.ibp_used else None,
            "robust_fusion": agreement is not None if run.ibp_used else None,
            "model": os.path.basename(run.model_path) if run.model_path else None,
            "ttf_iterations": run.ttf.iterations if ttf else None,
            "ttf_per_tile": bool(s.ttf_per_tile and s.tile > 0) if ttf else None,
            "ttf_fit": s.ttf_fit if ttf else None}


def _check_outputs(run: SRRun, sources) -> None:
    """Before any reading: the settings that exclude each other, the model to use, the output paths."""
    from ..learned.model_files import base_model_path

    s = run.settings
    if run.kernel_bank and run.method not in (*IBP_METHODS, "auto"):
        raise StackError("a kernel bank is used by IBP only (methods ibp, blend and auto)")
    if run.method == "blend" and run.ttf_per_tile and run.tile > 0:
        raise StackError("the blend finetunes the network once for the whole stack: TTF per tile is for piunet+ttf")
    if run.kernel_bank and run.psf_sigma is not None:
        raise StackError("give either a PSF sigma or a kernel bank for IBP, not both")
    if (run.learned or run.method == "auto") and not run.model_path:
        run.model_path = base_model_path(run.scale)  # None: auto chooses among the classic methods
        if run.model_path is None and run.learned:
            raise StackError(f"method '{run.method}' needs a trained model file (no base model is shipped for x{run.scale})")
    inputs = input_paths(sources) + [p for p in (run.model_path, run.kernel_bank) if p]
    plan_outputs([("super-resolved raster", s.output, RASTER_EXTENSIONS),
                  ("uncertainty raster", s.uncertainty_output, RASTER_EXTENSIONS),
                  ("TTF kernel layer", s.kernel_output, RASTER_EXTENSIONS), ("report", s.report_html, None)], inputs)


def check_sr_space(reader: StackReader, scale: int, output: str | None, uncertainty_output: str | None) -> None:
    """The super-resolved and uncertainty rasters must fit on their disks: checked before the statistics pass,
    which alone reads the whole stack."""
    n = raster_bytes(reader.width * scale, reader.height * scale, 1, output_nodata(reader))
    check_free_space([(output, n), (uncertainty_output, n)])


def _load_networks(run: SRRun):
    """PIUNet and, for TTF, the kernel prior (None, None for the classic methods); the run takes what the model file
    states about judging and blending it (:class:`model_files.Calibration`)."""
    from ..degradation.fkp import default_fkp_path, load_fkp
    from ..learned.model_files import calibration, load_model

    if not (run.learned or (run.method == "auto" and run.model_path)):
        return None, None
    net, payload = load_model(run.model_path, scale=run.scale, device=run.device)
    run.calibration = calibration(payload)
    return net, load_fkp(default_fkp_path(run.scale), run.scale) if run.method in (*TTF_METHODS, "auto") else None


def _select_frames(reader: StackReader, stats: StackStats, run: SRRun, reference: int | None, mon: Monitor) -> SelectedFrames:
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
