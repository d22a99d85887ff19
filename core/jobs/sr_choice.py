"""What the super-resolution job decides from one read of its registration window: the classic methods' PSF,
robust fusion's settings, IBP's iteration count, the validation of the candidates and ``auto``'s choice."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..classic.agreement import agreement_weights
from ..classic.baselines import IBP_CANDIDATES, choose_ibp_iterations, default_psf
from ..convention import default_kernel_size
from ..degradation.operators import gaussian_kernels
from ..progress import Monitor
from .sr_run import SelectedFrames, SRRun

if TYPE_CHECKING:
    from .validation import ValidationResult


def classic_kernels(sel: SelectedFrames, run: SRRun) -> torch.Tensor:
    """The classic methods' PSF: the bank's kernels of the frames used, a given sigma, or the default."""
    return sel.kernels if sel.kernels is not None else default_psf(run.scale) if run.psf_sigma is None \
        else gaussian_kernels(run.psf_sigma, run.psf_sigma, 0.0, default_kernel_size(run.scale), run.scale)


def robust_fusion(sel: SelectedFrames, frames: torch.Tensor, valid: torch.Tensor,
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


def ibp_iterations(sel: SelectedFrames, run: SRRun, frames: torch.Tensor, valid: torch.Tensor,
                       weights: torch.Tensor | None, mon: Monitor) -> int:
    """IBP's iteration count for this stack, by held-out validation on the registration window ``frames``
    (one count for every tile, so tiles match the untiled result)."""
    count, errors = choose_ibp_iterations(frames, valid, run.scale, sel.shifts, classic_kernels(sel, run),
                                          sel.stats.frame_means, weights, monitor=mon)
    rms = ", ".join(f"{k}: {e ** 0.5:.4g}" for k, e in zip(sorted(IBP_CANDIDATES), errors))
    mon.info(f"IBP iterations: {count} (held-out RMS error by iterations on the "
             f"{valid.shape[-2]}x{valid.shape[-1]} px window: {rms})")
    return count


def validate_window(sel: SelectedFrames, run: SRRun, frames: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor | None,
              net, flow, mon: Monitor) -> "ValidationResult | None":
    """Held-out validation (:mod:`validation`) on the central part of the registration window: of every
    candidate for ``auto``, else of the method asked for; each against the reference date upsampled alone.
    None when only the reference is used (nothing to hold out), unless ``auto`` has a network to validate one scale
    down."""
    from .method_choice import Setup, central_window, choose_method

    auto = run.method == "auto"
    if sel.source.count < 2 and not (auto and net is not None):  # the learned path is validated one scale down
        mon.info("quality estimate: none, only the reference image is used (nothing to hold out)")
        return None
    rows, cols = central_window(tuple(frames.shape[-2:]))
    f, v = frames[:, rows, cols], valid[:, rows, cols]
    w = None if weights is None else weights[:, rows, cols]
    psf = default_psf(run.scale) if run.psf_sigma is None and (auto or sel.kernels is None) else classic_kernels(sel, run)
    if auto and run.psf_sigma is not None:
        psf = gaussian_kernels(run.psf_sigma, run.psf_sigma, 0.0, default_kernel_size(run.scale), run.scale)
    setup = Setup(run.scale, sel.ref, sel.shifts, psf, run.iterations or IBP_CANDIDATES[-1], sel.shifts is not None,
                  sel.kernels if auto else None, net if (auto or run.learned) else None, flow, run.ttf,
                  QuietMonitor(mon), blend=not (run.ttf_per_tile and run.tile > 0),  # the blend finetunes once
                  calibration=run.calibration)
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


class QuietMonitor(Monitor):
    """The job's cancel for the validation's runs, without their progress (each would restart the bar)."""

    def __init__(self, job: Monitor):
        super().__init__()
        self.job = job

    def is_cancelled(self) -> bool:
        return self.job.is_cancelled()


def apply_auto_choice(run: SRRun, sel: SelectedFrames, validation: "ValidationResult | None", mon: Monitor) -> None:
    """``auto``: the method the validation ranks first (IBP with the kernel bank counts as IBP)."""
    from .method_choice import pick, preferred_classic, reason

    chosen = pick(validation)
    why = f"auto chose {chosen}: {reason(validation, chosen)}"
    mon.info(why)
    if validation is not None:
        validation.notes.append(why)
    if chosen == "ibp-bank":
        chosen = "ibp"
    elif chosen == "ibp" or (chosen == "blend" and validation is not None and validation.frames_scored
                             and preferred_classic(validation) == "ibp"):
        sel.kernels = None  # IBP with the default PSF did better than with the estimated kernels
    run.method = chosen
