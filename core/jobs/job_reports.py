"""The content of the jobs' HTML run reports (super-resolution, training) and their one-line log
summaries; :mod:`report` renders them."""
from __future__ import annotations

import html
import os
from typing import Sequence

import numpy as np
import torch

from ..classic.baselines import default_psf
from ..io.kernel_bank import UNCERTAINTY_PERCENTILE, UNCERTAINTY_STOPS


def ttf_summary(res) -> str:
    """One log line: loss change, and which iteration the TTF guard kept."""
    line = f"loss {res.losses[0]:.4f} -> {res.losses[-1]:.4f}" if res.losses else "no iteration"
    if res.reverted:
        return line + "; finetuning did not pass the guard (the untuned network passed its check better): kept the untuned network"
    return line + f"; kept iteration {res.kept_iteration} (guard check {res.kept_check:.4f}, untuned {res.baseline:.4f})"


def validation_rows(validation, chosen: str) -> list[tuple[str, str]]:
    """The report's rows for a held-out validation (:class:`validation.ValidationResult`, or None)."""
    if validation is None:
        return [("quality estimate", "none: only the reference image is used, nothing to hold out")]
    rows = [("quality estimate (held-out validation)",
             f"{validation.pixels} held-out input pixels of {validation.frames_scored} images, on a "
             f"{validation.window[1]}x{validation.window[0]} px window")]
    for sc in validation.scores:
        mark = " (used)" if sc.method == chosen else ""
        rows.append((f"  {sc.method}{mark}", f"RMS error {sc.rmse:.5g}; {sc.gain_db:+.2f} dB (+- {sc.gain_spread_db:.2f}) "
                                             f"over the reference image upsampled alone"))
    if validation.coarse:
        rows.append(("quality estimate one scale down", "the stack degraded once more by the scale and super-resolved "
                     "back to its own size, scored on the reference image's own pixels"))
        for sc in validation.coarse:
            mark = " (used)" if sc.method == chosen else ""
            rows.append((f"  {sc.method}{mark}", f"RMS error {sc.rmse:.5g}; {sc.gain_db:+.2f} dB (+- {sc.gain_spread_db:.2f} "
                                                 "over the window's quarters) over the reference image upsampled alone"))
    rows += [("  note", n) for n in validation.notes]
    return rows


def uncertainty_range(std: np.ndarray) -> tuple[float, float]:
    """0 to the :data:`kernel_bank.UNCERTAINTY_PERCENTILE` percentile of the finite values: the range in which
    reports and the map show an uncertainty raster."""
    finite = std[np.isfinite(std)]
    hi = float(np.percentile(finite, UNCERTAINTY_PERCENTILE)) if finite.size else 1.0
    return 0.0, hi if hi > 0 else 1.0


def sr_report(path: str, hr: torch.Tensor, ref_frame: torch.Tensor, ref_valid: torch.Tensor, scale: int,
              ttf_kernel: torch.Tensor | None, ttf_res, summary: list[tuple], reference_name: str = "reference",
              std: np.ndarray | None = None, covered: np.ndarray | None = None) -> None:
    """Settings, quicklooks (the reference date as input, the result and its uncertainty ``std``, both
    ``(H, W)`` with the output's ``covered`` pixels), TTF curve and kernel, and the reference-consistency
    check: the SR image blurred with the TTF kernel (else the default PSF), decimated and compared with
    the reference frame."""
    from ..degradation.operators import blur_downsample
    from ..io.kernel_bank import fit_gaussian
    from ..degradation.kernels import fit_caption, kernel_png_base64
    from ..io.report import colour_bar, figure, line_chart, quicklook, stretch, table, write_report

    kernel = ttf_kernel if ttf_kernel is not None else default_psf(scale)
    back = blur_downsample(torch.nan_to_num(hr.float()), kernel.float(), scale)
    ok = ref_valid & torch.isfinite(back)
    rmse = float(((back - ref_frame.float())[ok] ** 2).mean().sqrt()) if bool(ok.any()) else float("nan")
    spread = float(ref_frame[ref_valid].float().std()) if bool(ref_valid.any()) else float("nan")
    sr = hr.float().numpy().astype(np.float64)
    if covered is not None:
        sr = np.where(covered, sr, np.nan)
    lr = np.where(ref_valid.numpy(), ref_frame.float().numpy(), np.nan)
    lo, hi = stretch(sr)  # one grey stretch for input and result, so they compare
    looks = (quicklook(lr, lo, hi, f"input: {html.escape(reference_name)}", shown_as=sr.shape)
             + quicklook(sr, lo, hi, f"result (x{scale})"))
    if std is not None:  # shown as the map shows the uncertainty layer: the same ramp and range
        s_hi = uncertainty_range(np.where(np.isfinite(sr), std, np.nan))[1]
        looks += quicklook(std, 0.0, s_hi, "uncertainty (standard deviation)<br/>"
                           + colour_bar(0.0, s_hi, "standard deviation (input units)", width=160,
                                        ramp=UNCERTAINTY_STOPS), colour=True, ramp=UNCERTAINTY_STOPS)
    sections = [("Summary", table(summary)),
                ("Reference date, result and uncertainty", f"<p>Same grey stretch (2-98 % of the result: "
                                                           f"{lo:.4g} to {hi:.4g}) for the input and the result.</p>"
                                                           + looks),
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


SETTING_NAMES = {  # TrainConfig's fields as a report reader would name them
    "scale": "scale", "frames": "frames per sample", "patch": "training patch size (input pixels / scale)", "batch": "batch size",
    "steps": "steps", "lr": "learning rate", "max_shift": "shift searched by the loss (input pixels)",
    "uncertainty": "uncertainty head trained", "val_fraction": "share of rows kept for validation",
    "val_every": "validation every (steps)", "seed": "random seed", "shift_aug": "random shift of the network inputs (input pixels / scale)",
    "bf16": "bfloat16 arithmetic", "noise_aug": "noise added to the inputs (max std, normalised units)",
}


def kept_step(res: dict) -> str:
    """Which model a training run wrote, in words: its best step, or the model it started from."""
    step = res.get("best_step")
    return "the starting model (no step validated better)" if step == 0 else f"step {step}"


def training_report(path: str, res: dict, config, device: str, images: Sequence[str], bank=None,
                    settings=None) -> None:
    """The training run's report: summary, loss curves, the training configuration, the job's settings as given
    (``settings``, :class:`job_settings.TrainSettings`) and the kernel bank."""
    from dataclasses import asdict

    from ..degradation.kernels import gallery_section
    from ..io.report import line_chart, table, write_report

    hist = res["history"]
    train_curve = res.get("curve") or [(h[0], h[1]) for h in hist]
    sections = [
        ("Summary", table([("model", os.path.basename(res["output"])), ("steps", res["steps"]),
                           ("best validation loss", res["best_val"]),
                           ("model kept", kept_step(res)), ("seconds", res["seconds"]), ("device", device),
                           ("images", f"{len(images)}: " + ", ".join(images)),
                           *([settings.report_row()] if settings is not None else [])])),
        ("Loss", line_chart({"training (batch)": train_curve,
                             "validation (held-out area)": [(h[0], h[2]) for h in hist]}, "step", "loss")),
        ("Settings", table([(SETTING_NAMES.get(k, k), v) for k, v in asdict(config).items()], ("setting", "value"))),
    ]
    if bank is not None:
        sections.append(("Kernel bank", gallery_section(bank)))
    write_report(path, "StackSR training report", sections)
