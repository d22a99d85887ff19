"""The kernel-estimation job: DIP-FKP on a stack, written as a kernel bank, kernel layers and a gallery."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from .. import __version__
from .. import params as P
from ..convention import default_kernel_size
from ..heap import heap_reuse
from ..job_settings import KernelSettings
from .job_support import input_paths, scale_and_device
from ..io.outputs import plan_outputs
from ..progress import Monitor, ensure_monitor
from ..io.stack_io import ImageSource, StackError
from ..io.whole_reads import read_stack


@heap_reuse()
def run_estimate_kernels(sources: Sequence[ImageSource], settings: KernelSettings, monitor: Monitor | None = None) -> dict:
    """Estimate one blur kernel per image (DIP-FKP) and write the kernel bank (+ layers, gallery), with ``settings``
    (:class:`KernelSettings`, recorded whole in the bank's metadata)."""
    from dataclasses import asdict, replace

    from ..degradation.fkp import default_fkp_path, load_fkp
    from ..estimation.kernel_estimation import estimate_kernels
    from ..estimation.estimation_config import default_config
    from ..io.kernel_bank import KernelBank
    from ..degradation.kernels import write_gallery, write_kernel_layers

    mon = ensure_monitor(monitor)
    s = settings.checked()
    scale, dev, why = scale_and_device(s.scale, s.device)
    mode, seed, prior_path, layers_folder, report_html = s.mode, s.seed, s.prior_path, s.layers_folder, s.report_html
    size = s.kernel_size or default_kernel_size(scale)
    inputs = input_paths(sources)
    plan_outputs([("kernel bank", s.output, None), ("report", report_html, None),
                  ("report's mosaic", os.path.splitext(report_html)[0] + ".png" if report_html else None, None)], inputs)
    if layers_folder and os.path.exists(layers_folder) and not os.path.isdir(layers_folder):
        raise StackError(f"the kernel layers folder '{layers_folder}' is a file; give a folder")
    if layers_folder and not os.path.isdir(os.path.dirname(os.path.abspath(layers_folder))):
        raise StackError(f"the kernel layers folder '{layers_folder}' cannot be made: its parent folder does not exist")
    flow = load_fkp(prior_path or default_fkp_path(scale), scale, size, dev)
    config = default_config(mode)
    if s.iterations is not None:
        config = replace(config, iterations=s.iterations, warmup=min(config.warmup, s.iterations // 3))
    if s.crop is not None:
        config = replace(config, crop=int(s.crop))
    stack = read_stack(sources, s.invalid_mask_values)
    for line in stack.warnings:
        mon.info(line)
    min_side = min(stack.grid.width, stack.grid.height)
    if min_side * scale < size:
        raise StackError(f"images of {stack.grid.width}x{stack.grid.height} px are smaller than the {size}x{size} kernel at x{scale}")
    mon.info(f"device: {why}")
    mon.progress(0.02, f"read {stack.count} images; estimating kernels ({mode})")
    res = estimate_kernels(torch.from_numpy(stack.data), torch.from_numpy(stack.valid), flow, scale, mode,
                           config, seed, dev, mon.sub(0.02, 0.95))
    prior_only = [n for n, e in zip(stack.names, res.estimated.tolist()) if not e]
    if prior_only:
        mon.info(f"{len(prior_only)} of {stack.count} images do not register with the others (quality below "
                 f"{P.REGISTRATION_QUALITY.default}) and keep the default PSF: {', '.join(prior_only)}")
    meta = {"mode": mode, "seed": seed, "device": str(dev), "config": asdict(config), "default_psf_images": prior_only,
            "registration_quality": None if res.quality is None else [round(q, 4) for q in res.quality.tolist()],
            "prior": os.path.basename(prior_path or default_fkp_path(scale)), "seconds": round(res.seconds, 2),
            "final_loss": [round(l[-1], 8) for l in res.losses], "crops": res.crops,
            "shifts": None if res.shifts is None else res.shifts.tolist(), "stacksr_version": __version__,
            "settings": s.record()}
    bank = KernelBank(res.kernels.numpy().astype(np.float32), stack.names, scale, meta)
    bank.save(s.output)
    layers = write_kernel_layers(bank, layers_folder, stack.grid) if layers_folder else []
    if report_html:
        write_gallery(bank, report_html, os.path.splitext(report_html)[0] + ".png")
    mon.progress(1.0, f"wrote {s.output}")
    fits = bank.fits()
    return {"bank": s.output, "layers": layers, "report": report_html, "mode": mode, "scale": scale,
            "images": stack.count, "default_psf_images": prior_only, "digest": bank.digest(), "peak": bank.peak, "device": str(dev), "seconds": round(res.seconds, 2),
            "kernels": [{"image": n, "sigma1": round(f.sigma1, 3), "sigma2": round(f.sigma2, 3),
                         "theta_deg": round(float(np.degrees(f.theta)), 1)} for n, f in zip(stack.names, fits)]}
