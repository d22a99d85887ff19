"""The super-resolution job's output: the chosen method run tile by tile into the SR and uncertainty GeoTIFFs,
the TTF kernel layer and the run report, all or none."""
from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .. import __version__, distributed
from ..classic.baselines import classic_compute, classic_tiles
from ..io.atomic_files import atomic_outputs
from ..io.outputs import GeoTiffWriter, output_nodata, same_file
from ..io.stack_io import StackReader
from ..io.windows import read_window, run_tiles
from ..progress import Monitor
from .job_reports import sr_report, ttf_summary, validation_rows
from .sr_choice import classic_kernels
from .sr_run import SelectedFrames, SRRun

if TYPE_CHECKING:
    from .validation import ValidationResult


def run_learned(net, flow, sel: SelectedFrames, run: SRRun, sink, mon: Monitor):
    """PIUNet (after TTF when ``flow`` is given) into ``sink``; returns the TTF kernel and result."""
    from ..learned.inference import predict_source
    from ..learned.ttf import finetune_per_tile

    if flow is not None and run.ttf_per_tile and run.tile > 0:
        kernel, result = finetune_per_tile(net, flow, sel.source, sel.ref, run.tile, sink, run.ttf, run.device,
                                           mon.sub(0.1, 0.95))
        mon.info("TTF per tile; centre tile: " + ttf_summary(result))
        return kernel, result
    net, kernel, result = _finetuned(net, flow, sel, run, mon)
    mon.progress(0.6, "predicting")
    predict_source(net, sel.source, sel.stats, sink, run.tile, run.device, mon.sub(0.6, 0.95), sel.ref, sel.shifts)
    return kernel, result


def _finetuned(net, flow, sel: SelectedFrames, run: SRRun, mon: Monitor):
    """The network after TTF calibrated once on the registration window, with the whole stack's normalisation and
    pools (unchanged without ``flow``), the TTF kernel and result (None without)."""
    from ..learned.inference import stack_context
    from ..learned.ttf import test_time_finetune

    if flow is None:
        return net, None, None
    frames, valid = read_window(sel.source, *sel.window)
    context = stack_context(net.to(run.device).eval(), sel.source, sel.stats, run.device)
    net, kernel, result = test_time_finetune(net, flow, frames, valid, sel.ref, run.ttf, monitor=mon.sub(0.1, 0.6),
                                             device=run.device, stats=sel.stats, context=context)
    distributed.same_as_rank0([*net.parameters(), kernel], run.device)  # under torchrun: one tuned network
    mon.info("TTF: " + ttf_summary(result))
    return net, kernel, result


def run_blend(net, flow, sel: SelectedFrames, run: SRRun, sink, mon: Monitor,
              agreement: tuple[int, torch.Tensor] | None):
    """The blend of IBP and PIUNet + TTF (:func:`method_choice.blend`) into ``sink``, in one pass over the tiles: each
    tile runs both on the same window (read with the wider of their halos); the uncertainty is the network's.
    Returns the TTF kernel and result."""
    from ..learned.inference import learned_compute
    from .method_choice import blend

    net, kernel, result = _finetuned(net, flow, sel, run, mon)
    mon.progress(0.6, "predicting")
    learned, learned_halo = learned_compute(net, sel.source, sel.stats, run.device, mon, sel.ref, sel.shifts)
    classic, classic_halo = classic_compute(sel.source, sel.stats, "ibp", run.scale, sel.shifts,
                                            classic_kernels(sel, run), run.iterations, agreement, sel.ref)

    def compute(frames, valid, window, tile_mon):
        sr, log_scale = learned(frames, valid, window, tile_mon)
        return blend(classic(frames, valid, window, tile_mon)[0], sr, run.calibration.blend_learned_share), log_scale

    run_tiles(sel.source, run.scale, run.tile, max(learned_halo, classic_halo), compute, sink, mon.sub(0.6, 0.95))
    return kernel, result


def run_classic(sel: SelectedFrames, run: SRRun, sink, mon: Monitor, agreement: tuple[int, torch.Tensor] | None) -> None:
    classic_tiles(sel.source, sel.stats, run.method, run.scale, sel.shifts, sink, classic_kernels(sel, run),
                  run.iterations, run.tile, mon.sub(0.3, 0.95), agreement, sel.ref)


class FileSink:
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


def run_and_write(paths, reader: StackReader, sel: SelectedFrames, run: SRRun, params: dict, net, flow, mon: Monitor,
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
            sink = FileSink(out, unc, nodata, look)
            if run.method == "blend":
                ttf_kernel, ttf_res = run_blend(net, flow, sel, run, sink, mon, agreement)
            elif net is not None:
                ttf_kernel, ttf_res = run_learned(net, flow, sel, run, sink, mon)
            else:
                run_classic(sel, run, sink, mon, agreement)
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
                       *model_rows(run), ("device", str(run.device) if run.learned else "cpu"),
                       ("tile (input pixels)", run.tile), *step_rows(earlier_steps, seconds), *shown,
                       *validation_rows(validation, run.method), run.settings.report_row()],
                      sel.reference_name, sink.std if t_unc else None, sink.covered)
    return seconds


def model_rows(run: SRRun) -> list[tuple[str, str]]:
    """The report's rows on the network and the kernel bank: which file, and whether the result used it."""
    from ..learned.model_files import base_model_path

    rows = []
    if run.model_path:
        base = base_model_path(run.scale)
        name = (f"the shipped base model x{run.scale} ({os.path.basename(run.model_path)})"
                if base and os.path.exists(base) and same_file(base, run.model_path) else run.model_path)
        rows.append(("model", name + ("" if run.learned else " (validated by auto, not used)")))
    if run.kernel_bank:
        rows.append(("kernel bank", run.kernel_bank + ("" if run.ibp_used else " (validated by auto, not used)")))
    return rows


def step_rows(earlier_steps: Sequence[tuple[str, float]], seconds: float) -> list[tuple[str, object]]:
    """``seconds`` of this step, after the steps of the job that came before it (the chain's) and their total."""
    if not earlier_steps:
        return [("seconds", seconds)]
    n = len(earlier_steps) + 1
    rows = [(f"step {i}/{n}", f"{what} ({sec:.1f} s)") for i, (what, sec) in enumerate(earlier_steps, 1)]
    return rows + [(f"step {n}/{n}", f"super-resolution ({seconds:.1f} s)"),
                   ("seconds, whole job", round(seconds + sum(sec for _, sec in earlier_steps), 1))]
