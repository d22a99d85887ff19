"""The whole method in one job: estimate the kernels, fine-tune the shipped base model
self-supervised on the stack with them, super-resolve with the best of PIUNet + TTF (the fine-tuned model),
IBP with the estimated kernels and IBP with the default PSF, chosen by held-out validation. The kernel bank and the
model are kept in ``work_folder`` (reusable with the single-step jobs); the outputs are those of
:func:`sr_job.run_superresolve`."""
from __future__ import annotations

import os
import time
from typing import Sequence

from ..heap import heap_reuse
from ..job_settings import ChainSettings, KernelSettings, SuperResolveSettings, TrainSettings
from .job_reports import kept_step
from .kernel_job import run_estimate_kernels
from .job_support import input_paths
from ..io.outputs import RASTER_EXTENSIONS, plan_outputs
from ..progress import Monitor, ensure_monitor
from .sr_job import check_sr_space, run_superresolve
from ..io.stack_io import ImageSource, StackError, StackReader
from .train_job import run_train_self_supervised


@heap_reuse()
def run_chain(sources: Sequence[ImageSource], settings: ChainSettings, monitor: Monitor | None = None) -> dict:
    """Kernels -> fine-tuned model -> the validated best of PIUNet + TTF, IBP and their blend (method ``auto``), with ``settings``
    (:class:`ChainSettings`; each step gets its own settings object built from them). Returns the
    super-resolution summary with the paths of the kernel bank and the model."""
    mon = ensure_monitor(monitor)
    s = settings.checked()
    if not os.path.isdir(s.work_folder):
        raise StackError(f"work folder '{s.work_folder}' does not exist")
    bank, model = os.path.join(s.work_folder, "kernels.npz"), os.path.join(s.work_folder, "piunet.pt")
    # every file of the three steps, before the first: a collision found at step 3 came after minutes of work
    plan_outputs([("super-resolved raster", s.output, RASTER_EXTENSIONS),
                  ("uncertainty raster", s.uncertainty_output, RASTER_EXTENSIONS), ("report", s.report_html, None),
                  ("kernel bank", bank, None), ("model", model, None), ("checkpoint", model + ".last", None)],
                 input_paths(sources))
    with StackReader(sources, s.invalid_mask_values) as reader:
        check_sr_space(reader, s.scale, s.output, s.uncertainty_output)
    shared = {"scale": s.scale, "device": s.device, "invalid_mask_values": s.invalid_mask_values}
    mon.info("1/3 estimating the kernels")
    t0 = time.perf_counter()
    kernels = run_estimate_kernels(sources, KernelSettings(bank, seed=s.seed, **shared), mon.sub(0.0, 0.25))
    t1 = time.perf_counter()
    mon.info("2/3 fine-tuning the base model on the stack")
    trained = run_train_self_supervised([sources], TrainSettings(model, bank, steps=s.steps, seed=s.seed, **shared),
                                        mon.sub(0.25, 0.85))
    t2 = time.perf_counter()
    mon.info("3/3 super-resolving with the method that validates best (PIUNet + TTF, IBP or their blend)")
    earlier = [(f"kernel estimation ({kernels['mode']}, {kernels['images']} images) -> {bank}", t1 - t0),
               (f"fine-tuning the shipped base model, {s.steps} steps, best validation loss "
                f"{trained.get('best_val', float('nan')):.4g}, kept {kept_step(trained)} -> {model}", t2 - t1)]
    sr = SuperResolveSettings(s.output, method="auto", model_path=model, kernel_bank=bank,
                              uncertainty_output=s.uncertainty_output, report_html=s.report_html, **shared)
    summary = run_superresolve(sources, sr, mon.sub(0.85, 1.0), earlier_steps=earlier)
    return {**summary, "kernel_bank": bank, "model": model, "steps": s.steps,
            "seconds": round(time.perf_counter() - t0, 2),  # the whole job's, not its last step's
            "step_seconds": [round(t1 - t0, 2), round(t2 - t1, 2), summary["seconds"]]}
