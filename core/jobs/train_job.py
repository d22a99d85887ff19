"""The training jobs: self-supervised (with a kernel bank, estimated on the fly if none) and supervised."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from .. import params as P
from ..heap import heap_reuse
from ..job_settings import TrainSettings
from .job_reports import training_report
from .job_support import input_paths, scale_and_device
from ..io.outputs import check_output_path, plan_outputs
from ..progress import Monitor, ensure_monitor
from ..io.stack_io import ImageSource, StackError, check_same_grid
from ..io.whole_reads import read_raster, read_stack


def _learning_rate(s: TrainSettings, init: str | None, scale: int) -> float:
    """The rate given, else a resumed checkpoint's own, else the fine-tuning rate when starting from ``init``, else the
    from-scratch rate (:mod:`params`)."""
    from ..learned.model_files import load_model

    if s.lr:
        return s.lr
    if s.resume:
        return load_model(s.resume, scale=scale)[1]["train"]["lr"]
    return P.TRAIN_LR_FINETUNE if init else P.TRAIN_LR_SCRATCH


@heap_reuse()
def run_train_self_supervised(stacks_sources: Sequence[Sequence[ImageSource]], settings: TrainSettings,
                              monitor: Monitor | None = None) -> dict:
    """Train PIUNet self-supervised on one or more LR stacks, with ``settings`` (:class:`TrainSettings`, recorded
    whole in the model file and the report: loss curve, settings and the kernel bank used).

    Training fine-tunes ``init_model`` when given, else the shipped base model (``from_base``,
    where one is shipped for the scale), else starts from scratch; the architecture is the
    starting model's.

    ``kernel_bank``: a kernel bank of this scale; None estimates one on the fly (joint
    DIP-FKP on every stack). ``resume``: a ``<model>.last`` checkpoint to continue.
    ``patch``: CR patch size; 0 picks the largest (up to 32) that leaves a validation strip.
    """
    from ..degradation.fkp import default_fkp_path, load_fkp
    from ..estimation.kernel_estimation import estimate_kernels
    from ..io.kernel_bank import KernelBank
    from ..learned.model_files import base_model_path, load_model
    from ..learned.sampling import StackData, area_split, default_patch
    from ..learned.training import TrainConfig, bf16_supported, train_self_supervised

    mon = ensure_monitor(monitor)
    s = settings.checked()
    if s.hr:
        raise StackError("supervised training (an HR reference) is the supervised job's: run_train_supervised")
    scale, dev, why = scale_and_device(s.scale, s.device)
    patch, resume, output, report_html, bank_path = s.patch, s.resume, s.output, s.report_html, s.kernel_bank
    bank = KernelBank.load(bank_path, scale=scale) if bank_path else None
    init = s.init_model or (base_model_path(scale) if s.from_base and not resume else None)
    if init:
        load_model(init, scale=scale)
    inputs = [p for srcs in stacks_sources for p in input_paths(srcs)] + ([bank_path] if bank_path else []) \
        + ([init] if init else [])
    plan_outputs([("model", output, None), ("checkpoint", output + ".last" if output else None, None),
                  ("report", report_html, None)], inputs)
    stacks, names = [], []
    for srcs in stacks_sources:
        st = read_stack(srcs, s.invalid_mask_values)
        for line in st.warnings:
            mon.info(line)
        stacks.append(StackData(torch.from_numpy(st.data), torch.from_numpy(st.valid), st.names[0]))
        names += st.names
    if not patch:  # automatic (None; 0 in saved models and scripts of earlier versions)
        patch = default_patch([tuple(st.frames.shape[-2:]) for st in stacks], scale)
    try:  # refuse stacks too small for the patches before any kernel estimation
        area_split(stacks, patch * scale, TrainConfig.val_fraction)
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    train_mon = mon
    if bank is None:
        flow = load_fkp(default_fkp_path(scale), scale, device=dev)
        kernels = []
        for i, st in enumerate(stacks):
            sub = mon.sub(0.2 * i / len(stacks), 0.2 * (i + 1) / len(stacks))
            kernels.append(estimate_kernels(st.frames, st.valid, flow, scale, "joint", seed=s.seed, device=dev, monitor=sub).kernels)
        bank = KernelBank(torch.cat(kernels).numpy().astype(np.float32), names, scale, {"mode": "joint", "on_the_fly": True})
        mon.info(f"estimated {len(names)} kernels on the fly (joint DIP-FKP)")
        train_mon = mon.sub(0.2, 1.0)
    use_bf16 = bf16_supported(dev)
    mon.info(f"device: {why}; bf16 autocast {'on' if use_bf16 else 'off'}; kernel bank {bank.digest()} ({len(bank.names)} kernels)")
    lr = _learning_rate(s, init, scale)
    start = f"starting from {os.path.basename(init)}" if init else "starting from scratch" if not resume else f"resuming {resume}"
    mon.info(f"{start}; learning rate {lr:g}")
    config = TrainConfig(scale=scale, frames=s.frames, patch=patch, batch=s.batch, steps=s.steps, lr=lr, seed=s.seed,
                         bf16=use_bf16)
    try:
        res = train_self_supervised(stacks, torch.from_numpy(bank.kernels), config, output, bank.digest(),
                                    resume=resume, device=dev, monitor=train_mon, init=init,
                                    extra={"job_settings": s.record()})
    except ValueError as exc:
        raise StackError(str(exc)) from exc
    if report_html:
        training_report(report_html, res, config, str(dev), names, bank, s)
        res["report"] = report_html
    return res


@heap_reuse()
def run_train_supervised(sources: Sequence[ImageSource], settings: TrainSettings, monitor: Monitor | None = None) -> dict:
    """Train PIUNet with the HR reference raster ``settings.hr`` on the stack's grid refined ``scale`` times."""
    from ..learned.sampling import StackData
    from ..learned.training import TrainConfig, bf16_supported, train_supervised

    mon = ensure_monitor(monitor)
    s = settings.checked()
    if not s.hr:
        raise StackError("supervised training needs an HR reference raster")
    if s.kernel_bank:
        raise StackError("supervised training uses no kernel bank: give either an HR reference or a kernel bank")
    scale, dev, why = scale_and_device(s.scale, s.device)
    hr_path, patch = s.hr, s.patch
    check_output_path(s.output, input_paths(sources) + [hr_path])
    st = read_stack(sources, s.invalid_mask_values)
    for line in st.warnings:
        mon.info(line)
    hr, hr_ok, hr_grid, _ = read_raster(hr_path)
    check_same_grid(hr_grid, st.grid.scaled(scale), hr_path, f"the stack refined x{scale}")
    if not patch:  # automatic (None; 0 in saved models and scripts of earlier versions)
        patch = max(min(32, min(st.grid.width, st.grid.height) // 2), 2)
    mon.info(f"device: {why}")
    config = TrainConfig(scale=scale, frames=s.frames, patch=patch, batch=s.batch, steps=s.steps,
                         lr=_learning_rate(s, None, scale), seed=s.seed, bf16=bf16_supported(dev))
    hr_t = torch.from_numpy(np.where(hr_ok, hr, np.nan).astype(np.float32))
    try:
        return train_supervised([StackData(torch.from_numpy(st.data), torch.from_numpy(st.valid), st.names[0])],
                                [hr_t], config, s.output, resume=s.resume, device=dev, monitor=mon,
                                extra={"job_settings": s.record()})
    except ValueError as exc:
        raise StackError(str(exc)) from exc
