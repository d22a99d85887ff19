"""The whole method in one job: estimate the kernels, fine-tune the shipped base model
self-supervised on the stack with them, super-resolve with the best of PIUNet + TTF (the fine-tuned model),
IBP with the estimated kernels and IBP with the default PSF, chosen by held-out validation. The kernel bank and the
model are kept in ``work_folder`` (reusable with the single-step jobs); the outputs are those of
:func:`sr_job.run_superresolve`."""
from __future__ import annotations

import os
import time
from typing import Sequence

from .. import params as P
from ..heap import heap_reuse
from .kernel_job import run_estimate_kernels
from .job_support import input_paths
from ..io.outputs import RASTER_EXTENSIONS, plan_outputs
from ..progress import Monitor, ensure_monitor
from .sr_job import check_sr_space, run_superresolve
from ..io.stack_io import FMASK_INVALID_VALUES, ImageSource, StackError, StackReader
from .train_job import run_train_self_supervised


@heap_reuse()
def run_chain(
    sources: Sequence[ImageSource],
    output: str,
    work_folder: str,
    scale: int = 3,
    steps: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    uncertainty_output: str | None = None,
    report_html: str | None = None,
    invalid_mask_values: Sequence[int] = FMASK_INVALID_VALUES,
    monitor: Monitor | None = None,
) -> dict:
    """Kernels -> fine-tuned model -> the validated best of PIUNet + TTF and IBP (method ``auto``). Returns the
    super-resolution summary with the paths of the kernel bank and the model."""
    mon = ensure_monitor(monitor)
    steps, seed = P.CHAIN_STEPS.check(steps), P.SEED.check(seed)
    if not os.path.isdir(work_folder):
        raise StackError(f"work folder '{work_folder}' does not exist")
    bank, model = os.path.join(work_folder, "kernels.npz"), os.path.join(work_folder, "piunet.pt")
    # every file of the three steps, before the first: a collision found at step 3 came after minutes of work
    plan_outputs([("super-resolved raster", output, RASTER_EXTENSIONS),
                  ("uncertainty raster", uncertainty_output, RASTER_EXTENSIONS), ("report", report_html, None),
                  ("kernel bank", bank, None), ("model", model, None), ("checkpoint", model + ".last", None)],
                 input_paths(sources))
    with StackReader(sources, invalid_mask_values) as reader:
        check_sr_space(reader, scale, output, uncertainty_output)
    mon.info("1/3 estimating the kernels")
    t0 = time.perf_counter()
    kernels = run_estimate_kernels(sources, bank, scale, device=device, seed=seed,
                                   invalid_mask_values=invalid_mask_values, monitor=mon.sub(0.0, 0.25))
    t1 = time.perf_counter()
    mon.info("2/3 fine-tuning the base model on the stack")
    trained = run_train_self_supervised([sources], bank, model, scale, steps=steps, device=device, seed=seed,
                                        invalid_mask_values=invalid_mask_values, monitor=mon.sub(0.25, 0.85))
    t2 = time.perf_counter()
    mon.info("3/3 super-resolving with the method that validates best (PIUNet + TTF or IBP)")
    earlier = [(f"kernel estimation ({kernels['mode']}, {kernels['images']} images) -> {bank}", t1 - t0),
               (f"fine-tuning the shipped base model, {steps} steps, best validation loss "
                f"{trained.get('best_val', float('nan')):.4g} -> {model}", t2 - t1)]
    summary = run_superresolve(sources, output, scale, "auto", model_path=model, kernel_bank=bank, device=device,
                               uncertainty_output=uncertainty_output, report_html=report_html,
                               invalid_mask_values=invalid_mask_values, monitor=mon.sub(0.85, 1.0),
                               earlier_steps=earlier)
    return {**summary, "kernel_bank": bank, "model": model, "steps": steps,
            "seconds": round(time.perf_counter() - t0, 2),  # the whole job's, not its last step's
            "step_seconds": [round(t1 - t0, 2), round(t2 - t1, 2), summary["seconds"]]}
