"""The candidate methods of ``auto`` as functions of one window, and the choice among them by held-out
validation (:mod:`validation`).

Each candidate runs on the window exactly as the job would run it on the raster: the same registration
shifts, the same PSF or kernel bank, IBP's iteration count and robust fusion, the same model and TTF
settings. The window's own statistics stand in for the whole raster's (validation compares methods on the
same window, so they share any difference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .agreement import agreement_weights
from .baselines import ibp, mean_bicubic, reference_bicubic
from .validation import REFERENCE_BASELINE, ValidationResult, validate

Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

VALIDATION_WINDOW = 128  # input px: validation runs every candidate once on a window this size at most


@dataclass
class Setup:
    """What the candidates share: the scale, the reference, the registration (LR px, ``(T, 2)``, None
    without), the PSF of the classic methods (``(K, K)`` or one per frame), IBP's iteration count and
    whether it weighs dates by agreement, and the learned path (a network and, for TTF, the kernel prior)."""

    scale: int
    ref: int
    shifts: torch.Tensor | None
    psf: torch.Tensor
    ibp_iterations: int
    robust: bool = True
    bank: torch.Tensor | None = None  # per-frame estimated kernels: adds "ibp-bank"
    net: object = None
    flow: object = None
    ttf: object = None  # ttf.TTFConfig
    monitor: object = None  # progress.Monitor: every candidate honours cancel (TTF and IBP run long on a big window)


def runners(setup: Setup) -> dict[str, Runner]:
    """Name -> function ``(frames (T, h, w), valid) -> HR (s*h, s*w)``, in the order they are tried."""
    s, ref, shifts = setup.scale, setup.ref, setup.shifts

    def weights_of(frames, valid):
        if not setup.robust or shifts is None or frames.shape[0] < 2:
            return None
        mean = float(frames[ref][valid[ref]].mean()) if valid[ref].any() else float(frames[valid].mean())
        return agreement_weights(frames, valid, ref, shifts, mean)[0]

    mon = setup.monitor
    out: dict[str, Runner] = {
        REFERENCE_BASELINE: lambda f, v: reference_bicubic(f, v, ref, s),
        "bicubic": lambda f, v: mean_bicubic(f, v, s, shifts),
        "ibp": lambda f, v: ibp(f, v, s, shifts, setup.psf, setup.ibp_iterations, monitor=mon, weights=weights_of(f, v)),
    }
    if setup.bank is not None:
        out["ibp-bank"] = lambda f, v: ibp(f, v, s, shifts, setup.bank, setup.ibp_iterations, monitor=mon,
                                           weights=weights_of(f, v))
    if setup.net is not None:
        from .inference import predict
        from .ttf import test_time_finetune

        def learned(f, v):
            net = setup.net
            if setup.flow is not None:
                net = test_time_finetune(net, setup.flow, f, v, ref, setup.ttf, monitor=mon)[0]
            return predict(net, f, v, reference=ref, monitor=mon)[0]

        out["piunet+ttf" if setup.flow is not None else "piunet"] = learned
    return out


def choose_method(setup: Setup, frames: torch.Tensor, valid: torch.Tensor, kernels: torch.Tensor,
                  weights: torch.Tensor | None = None, only: tuple[str, ...] | None = None,
                  check: Callable[[], None] | None = None) -> ValidationResult:
    """Validate the candidates (all, or ``only`` these plus the reference baseline) on ``frames`` ``(T, h, w)``
    and rank them; ``kernels`` degrade the output to each frame (the PSF or the bank), ``weights`` keep changed
    land out of the error (robust fusion's).

    All candidates: the learned path is first validated without TTF (one forward pass); its TTF, which costs
    more than every other candidate together, runs only when the untuned network comes within
    :data:`TTF_RAISE_DB` of the margin the learned path needs over IBP (:func:`pick`)."""
    cands = runners(setup)
    if only is not None:
        cands = {k: v for k, v in cands.items() if k in only or k == REFERENCE_BASELINE}
        return validate(cands, frames, valid, setup.ref, setup.scale, setup.shifts, kernels, weights, check=check)
    tuned = cands.pop("piunet+ttf", None)
    if tuned is not None:
        cands["piunet"] = runners(replace(setup, flow=None))["piunet"]
    result = validate(cands, frames, valid, setup.ref, setup.scale, setup.shifts, kernels, weights, check=check)
    if tuned is None or not result.frames_scored:
        return result
    classic = min((s for s in result.scores if s.method in PREFERRED), key=lambda s: s.rmse)
    untuned = result.score("piunet")
    ahead = 20 * math.log10(classic.rmse / untuned.rmse) if 0 < untuned.rmse < float("inf") else float("-inf")
    if ahead + TTF_RAISE_DB < LEARNED_MARGIN_DB:
        result.notes.append(
            f"piunet+ttf not validated: before TTF the network predicts {ahead:+.2f} dB against {classic.method}, "
            f"and TTF raised that by at most {TTF_RAISE_DB:g} dB on the benchmarks' stacks, short of the "
            f"{LEARNED_MARGIN_DB:g} dB the learned path needs")
        return result
    second = validate({REFERENCE_BASELINE: cands[REFERENCE_BASELINE], "piunet+ttf": tuned}, frames, valid, setup.ref,
                      setup.scale, setup.shifts, kernels, weights, check=check)  # the same held-out blocks (seed)
    result.scores = sorted(result.scores + [second.score("piunet+ttf")], key=lambda s: s.rmse)
    return result


def central_window(shape: tuple[int, int], size: int = VALIDATION_WINDOW) -> tuple[slice, slice]:
    """The central ``size`` x ``size`` (at most) part of an ``(h, w)`` window."""
    h, w = shape
    r0, c0 = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return slice(r0, r0 + min(size, h)), slice(c0, c0 + min(size, w))


PREFERRED = ("ibp", "ibp-bank")  # the classic family that measured best on all three kinds of stack (BENCHMARKS.md)
LEARNED_MARGIN_DB = 0.5  # the learned path must validate this much better than IBP ...
LEARNED_FRAME_SHARE = 2 / 3  # ... and be better on this share of the scored images
# the most TTF raised the learned path's validated score on the benchmarks' 34 stacks was 4.0 dB (a Romania x2
# stack; mean 0.74; benchmarks/probe_screen.py): with 1 dB to spare, an untuned network further than this below the
# margin cannot reach it, and its TTF is not validated
TTF_RAISE_DB = 5.0


def pick(result: ValidationResult | None) -> str:
    """The method ``auto`` uses, from the held-out validation of every candidate.

    Held-out pixels are other dates' pixels, so validation also rewards a method for looking like the other
    dates; on stacks of one date's frames it ranks the methods as the truth does, on real dates and sensors it
    often ranks the reference date upsampled alone or the mean of dates first where the truth does not
    (BENCHMARKS.md, *held-out validation*). It decides therefore within what it can judge: IBP with the default
    PSF or with the kernel bank, whichever predicts better, and the learned path only when it predicts clearly
    better than IBP (:data:`LEARNED_MARGIN_DB` overall and on :data:`LEARNED_FRAME_SHARE` of the images). With
    nothing to validate (one image used), IBP: on one image it deconvolves the default PSF (above bicubic on
    every single-image stack of the benchmarks)."""
    if result is None or not result.frames_scored:
        return "ibp"
    classic = min((s for s in result.scores if s.method in PREFERRED), key=lambda s: s.rmse, default=None)
    if classic is None:
        return result.best.method
    for s in _learned(result):
        if not (0 < s.rmse < float("inf")) or len(s.frame_rmse) != len(classic.frame_rmse):
            continue
        better = sum(a < b for a, b in zip(s.frame_rmse, classic.frame_rmse)) / max(len(s.frame_rmse), 1)
        if 20 * math.log10(classic.rmse / s.rmse) >= LEARNED_MARGIN_DB and better >= LEARNED_FRAME_SHARE:
            return s.method
    return classic.method


def _learned(result: ValidationResult) -> list:
    """The learned path's score: PIUNet + TTF when it was validated, else the network alone. The untuned network's
    score only screens the TTF (chosen for itself, it lost 0.7 and 0.4 dB on two real-date stacks)."""
    return [s for s in result.scores if s.method == "piunet+ttf"] or [s for s in result.scores if s.method == "piunet"]


def reason(result: ValidationResult | None, chosen: str) -> str:
    """Why ``auto`` took ``chosen`` (:func:`pick`), in words for the log and the report."""
    if result is None or not result.frames_scored:
        return "only the reference image is used: nothing to validate, and IBP deconvolves it"
    learned = _learned(result)
    if chosen.startswith("piunet"):
        ibp_rmse = min(s.rmse for s in result.scores if s.method in PREFERRED)
        s = result.score(chosen)
        return (f"it predicts the held-out pixels {20 * math.log10(ibp_rmse / s.rmse):.2f} dB better than IBP "
                f"(at least {LEARNED_MARGIN_DB:g} dB needed)")
    text = "IBP" + (" with the estimated kernels" if chosen == "ibp-bank" else "") + ", the best classic method"
    if learned:
        ibp = result.score(chosen)
        best = min(learned, key=lambda x: x.rmse)
        text += (f"; {best.method} validated {20 * math.log10(ibp.rmse / best.rmse):+.2f} dB against it, less than the "
                 f"{LEARNED_MARGIN_DB:g} dB (on two thirds of the images) that would make it the choice")
    return text
