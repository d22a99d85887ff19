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

from ..classic.agreement import agreement_weights
from ..classic.baselines import IBP_CANDIDATES, ibp, mean_bicubic, reference_bicubic
from ..learned.model_files import Calibration
from .validation import REFERENCE_BASELINE, ValidationResult, validate, validate_one_scale_down

Runner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

VALIDATION_WINDOW = 128  # input px: validation runs every candidate once on a window this size at most
BLEND_LEARNED_SHARE = 0.5  # the blend's weight of PIUNet + TTF (the rest is IBP's)


def blend(ibp_out: torch.Tensor, learned_out: torch.Tensor, share: float | None = None) -> torch.Tensor:
    """The "blend" method's output from IBP's and PIUNet + TTF's on the same pixels (any shape): their weighted mean,
    ``share`` (None: :data:`BLEND_LEARNED_SHARE`; a model file may state its own) the learned path's weight.
    The two err differently (IBP rings along edges where its PSF is wrong, the network invents or misses detail), so
    on real data their mean beats both on most stacks (BENCHMARKS.md, *blend*); it is a candidate of ``auto``."""
    w = BLEND_LEARNED_SHARE if share is None else share
    return (1 - w) * ibp_out + w * learned_out


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
    blend: bool = True  # with net and flow: the blend of IBP and PIUNet + TTF is a candidate too
    calibration: Calibration = Calibration()  # what the model file states (its one-scale-down bias, its blend share)


def runners(setup: Setup) -> dict[str, Runner]:
    """Name -> function ``(frames (T, h, w), valid) -> HR (s*h, s*w)``, in the order they are tried."""
    s, ref, shifts = setup.scale, setup.ref, setup.shifts

    def weights_of(frames, valid):
        if not setup.robust or shifts is None or frames.shape[0] < 2:
            return None
        mean = float(frames[ref][valid[ref]].mean()) if valid[ref].any() else float(frames[valid].mean())
        return agreement_weights(frames, valid, ref, shifts, mean)[0]

    mon = setup.monitor

    def ibp_with(kernels):
        return lambda f, v: ibp(f, v, s, shifts, kernels, setup.ibp_iterations, monitor=mon, weights=weights_of(f, v))

    out: dict[str, Runner] = {
        REFERENCE_BASELINE: lambda f, v: reference_bicubic(f, v, ref, s),
        "bicubic": lambda f, v: mean_bicubic(f, v, s, shifts),
        "ibp": ibp_with(setup.psf),
    }
    if setup.bank is not None:
        out["ibp-bank"] = ibp_with(setup.bank)
    if setup.net is not None:
        from ..learned.inference import predict
        from ..learned.ttf import test_time_finetune

        def learned(f, v):
            net = setup.net
            if setup.flow is not None:
                net = test_time_finetune(net, setup.flow, f, v, ref, setup.ttf, monitor=mon)[0]
            return predict(net, f, v, reference=ref, monitor=mon)[0]

        out["piunet+ttf" if setup.flow is not None else "piunet"] = learned
        if setup.flow is not None and setup.blend:
            out["blend"] = lambda f, v: blend(out["ibp"](f, v), learned(f, v), setup.calibration.blend_learned_share)
    return out


def choose_method(setup: Setup, frames: torch.Tensor, valid: torch.Tensor, kernels: torch.Tensor,
                  weights: torch.Tensor | None = None, only: tuple[str, ...] | None = None,
                  check: Callable[[], None] | None = None) -> ValidationResult:
    """Validate the candidates (all, or ``only`` these plus the reference baseline) on ``frames`` ``(T, h, w)``
    and rank them; ``kernels`` degrade the output to each frame (the PSF or the bank), ``weights`` keep changed
    land out of the error (robust fusion's).

    All candidates (``auto``): the classic ones on held-out pixels; the learned path and the blend, which held-out
    pixels of other dates cannot judge (:mod:`validation`), one scale down against IBP and the reference alone
    (:func:`validation.validate_one_scale_down`; TTF then runs on a coarse stack of 1/scale^2 the pixels, once for
    both: the blend is scored from the learned path's and IBP's coarse outputs)."""
    cands = runners(setup)
    if only is not None:
        cands = {k: v for k, v in cands.items() if k in only or k == REFERENCE_BASELINE}
        return validate(cands, frames, valid, setup.ref, setup.scale, setup.shifts, kernels, weights, check=check)
    name = next((m for m in cands if m.startswith("piunet")), None)
    with_blend = cands.pop("blend", None) is not None
    if name is not None:
        del cands[name]
    result = validate(cands, frames, valid, setup.ref, setup.scale, setup.shifts, kernels, weights, check=check)
    if name is None:  # one scale down needs no other date: a stack of the reference alone is validated there too
        return result
    coarse = replace(setup, shifts=None if setup.shifts is None else setup.shifts / setup.scale, bank=None)
    outputs: dict[str, torch.Tensor] = {}

    def kept(method: str, run: Runner) -> Runner:  # the blend is scored from these outputs, not run again
        def runs(f, v):
            outputs[method] = run(f, v)
            return outputs[method]
        return runs

    cands = {m: kept(m, f) for m, f in runners(coarse).items() if m in (REFERENCE_BASELINE, "bicubic", name)}
    # IBP at each count: one scale down the target is known, so IBP competes at its best count there (held-out
    # pixels of other dates choose few iterations, and IBP with few iterations is far from its best one scale down)
    cands.update({f"ibp@{k}": kept(f"ibp@{k}", runners(replace(coarse, ibp_iterations=k))["ibp"])
                  for k in IBP_CANDIDATES})
    scores = validate_one_scale_down(cands, frames, valid, setup.ref, setup.scale, setup.psf, check=check)
    if not scores:
        result.notes.append(f"{name} not validated: the window is too small to be degraded once more")
        return result
    best = min((s for s in scores if s.method.startswith("ibp@")), key=lambda s: s.rmse)
    result.notes.append(f"one scale down IBP is scored at its best iteration count, {best.method[4:]}")
    ibp_out = outputs[best.method]
    best.method = "ibp"
    result.coarse = [s for s in scores if not s.method.startswith("ibp@")]
    result.learned_bias_db = setup.calibration.one_scale_down_bias_db
    if with_blend:
        mixed = blend(ibp_out, outputs[name], setup.calibration.blend_learned_share)
        result.blend_share = setup.calibration.blend_learned_share
        again = validate_one_scale_down({REFERENCE_BASELINE: lambda f, v: outputs[REFERENCE_BASELINE],
                                         "blend": lambda f, v: mixed}, frames, valid, setup.ref, setup.scale,
                                        setup.psf, check=check)
        score = next(s for s in again if s.method == "blend")
        score.seconds = best.seconds + next(s.seconds for s in scores if s.method == name)
        result.coarse = sorted(result.coarse + [score], key=lambda s: s.rmse)
    return result


def central_window(shape: tuple[int, int], size: int = VALIDATION_WINDOW) -> tuple[slice, slice]:
    """The central ``size`` x ``size`` (at most) part of an ``(h, w)`` window."""
    h, w = shape
    r0, c0 = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return slice(r0, r0 + min(size, h)), slice(c0, c0 + min(size, w))


PREFERRED = ("ibp", "ibp-bank")  # the classic family that measured best on all three kinds of stack (BENCHMARKS.md)
# One scale down, a challenger replaces IBP only when it beats IBP there by its margin: the learned path by 0.5 dB, the
# reference date upsampled alone by 2.5 (where the other dates show other land or light, IBP fuses it in and the
# reference alone wins by several dB one scale down and at full scale; set on the Romania selection dates,
# BENCHMARKS.md). The challenger furthest past its own margin is taken (on both selection sets this beat comparing the
# challengers' raw scores once one had passed). The blend's margin is the learned path's times its learned share
# (:func:`margins` derives it: 0.25 dB with the default share).
# These hold for a model one scale down judges fairly: on the x3 selection sets, where one scale down rates the x3
# model within 0.06 dB of the truth against IBP, any learned margin from 0.25 to 1 dB scores the same and lower ones
# lose (BENCHMARKS.md, fifteenth session). :func:`margins` lowers the learned path's and the blend's by what the
# model's own file says one scale down understates it (a model fine-tuned on a sensor's real pairs learned a
# degradation the Gaussian-degraded coarse stack does not show: 1.88 dB for the shipped x2 model).
ONE_SCALE_DOWN_MARGIN_DB = {"learned": 0.5, REFERENCE_BASELINE: 2.5}


def margins(result: ValidationResult) -> dict[str, float]:
    """Each challenger's margin over IBP one scale down for this validation: the learned path's less its model's
    bias, the blend's that times the blend's learned share (the model file's, else the default)."""
    learned = ONE_SCALE_DOWN_MARGIN_DB["learned"] - result.learned_bias_db
    return {"learned": learned, REFERENCE_BASELINE: ONE_SCALE_DOWN_MARGIN_DB[REFERENCE_BASELINE],
            "blend": learned * (BLEND_LEARNED_SHARE if result.blend_share is None else result.blend_share)}


# IBP's held-out gain over the reference alone from which the dates explain each other as frames of one scene do.
# Every stack cut from one image of the static benchmark measures 5.4 to 8.7 dB, every real stack of the benchmarks and
# the selection sets (40 of real dates or sensors) at most 4.3; on the selection sets' stacks cut from one NDVI image
# (2.2 to 6.2 dB) IBP and the blend tie (BENCHMARKS.md, *one scene*).
ONE_SCENE_GAIN_DB = 5.0


def pick(result: ValidationResult | None) -> str:
    """The method ``auto`` uses, from the validation of every candidate (:func:`choose_method`).

    Held-out pixels are other dates' pixels, so that validation also rewards a method for looking like the
    other dates; on stacks of one date's frames it ranks the methods as the truth does, on real dates and
    sensors it often ranks the reference date upsampled alone or the mean of dates first where the truth does
    not (BENCHMARKS.md, *held-out validation*). It decides therefore within what it can judge: IBP with the
    default PSF or with the kernel bank, whichever predicts better. One scale down, where the target is the
    reference date's own pixels, the learned path, the blend and the reference date alone challenge IBP: each must
    beat IBP there by its margin (:data:`ONE_SCALE_DOWN_MARGIN_DB`, which makes up for what flatters it or IBP one
    scale down), and of those that do, the one furthest past its margin is taken; this needs no other date, so it
    also decides where only the reference image is used. Otherwise IBP where the dates are frames of one scene
    (:func:`one_scene`), and the blend, where there is a network, wherever they are not: one image, or dates that
    do not explain each other (on real dates and sensors the blend was at or above IBP on nearly every stack)."""
    if result is None:
        return "ibp"
    ahead = [(gain - margin, method) for method, gain, margin in _ahead_of_ibp(result) if gain >= margin]
    if ahead:
        return max(ahead)[1]
    if result.coarse_score("blend") is not None and not one_scene(result):
        return "blend"
    return preferred_classic(result)


def one_scene(result: ValidationResult) -> bool:
    """Whether the other dates explain each other as frames of one scene do: the preferred IBP predicts their
    held-out pixels at least :data:`ONE_SCENE_GAIN_DB` better than the reference date alone. There IBP is the best
    method (it fuses many consistent views of the same detail); with one image it only deconvolves the default PSF
    (and one scale down that is the exact inverse of how the coarse image was made, so no margin is fair to it), and
    across dates of changing land or light the network's errors and IBP's differ enough for their mean to win."""
    gain = _scene_gain(result)
    return gain is not None and gain >= ONE_SCENE_GAIN_DB


def _scene_gain(result: ValidationResult) -> float | None:
    """The preferred IBP's held-out gain over the reference alone (None when nothing was held out)."""
    score = result.score(preferred_classic(result)) if result.frames_scored else None
    return None if score is None else score.gain_db


def preferred_classic(result: ValidationResult) -> str:
    """IBP with the default PSF or with the kernel bank, whichever predicts held-out pixels better ("ibp" when
    nothing was held out)."""
    classic = min((s for s in result.scores if s.method in PREFERRED), key=lambda s: s.rmse, default=None)
    return "ibp" if classic is None else classic.method


def _ahead_of_ibp(result: ValidationResult) -> list[tuple[str, float, float]]:
    """(challenger, its gain over IBP one scale down in dB, the margin it needs) for the learned candidate, the
    blend and the reference date alone, where validated."""
    ibp = result.coarse_score("ibp")
    if ibp is None:
        return []
    out, need = [], margins(result)
    for s in result.coarse:
        kind = "learned" if s.method.startswith("piunet") else s.method
        if kind in need and 0 < s.rmse < float("inf"):
            out.append((s.method, 20 * math.log10(ibp.rmse / s.rmse), need[kind]))
    return out


def reason(result: ValidationResult | None, chosen: str) -> str:
    """Why ``auto`` took ``chosen`` (:func:`pick`), in words for the log and the report."""
    if result is None:
        return "only the reference image is used: nothing to validate, and IBP deconvolves it"
    ahead = {m: (gain, margin) for m, gain, margin in _ahead_of_ibp(result)}
    if chosen in ahead and ahead[chosen][0] >= ahead[chosen][1]:
        gain, margin = ahead[chosen]
        others = [m for m, (g, mm) in ahead.items() if m != chosen and g >= mm]
        return (f"one scale down (the stack degraded once more and super-resolved back to its own size) it is "
                f"{gain:+.2f} dB against IBP on the reference image (at least {margin:+.2f} dB needed{_bias_note(result, chosen)})"
                + (f", further past its margin than {', '.join(others)}" if others else ""))
    if chosen == "blend":
        text = ("only the reference image is used: IBP alone would only deconvolve it" if not result.frames_scored else
                f"the dates do not explain each other as frames of one scene (IBP's held-out gain "
                f"{_scene_gain(result):.2f} dB, under {ONE_SCENE_GAIN_DB:g})")
        text += ", so the blend of IBP and the learned path"
    elif not result.frames_scored:
        text = "only the reference image is used: nothing to hold out, and IBP deconvolves it"
    else:
        text = "IBP" + (" with the estimated kernels" if chosen == "ibp-bank" else "") + \
            ", the best classic method on held-out pixels" + \
            (f", the dates explaining each other as frames of one scene (held-out gain at least {ONE_SCENE_GAIN_DB:g} dB)"
             if one_scene(result) and result.coarse_score("blend") is not None else "")
    for m, (gain, margin) in ahead.items():
        if m == chosen:
            continue
        text += (f"; one scale down {m} is {gain:+.2f} dB against IBP, less than the {margin:+.2f} dB that would make "
                 f"it the choice{_bias_note(result, m)}")
    return text


def _bias_note(result: ValidationResult, method: str) -> str:
    """The model's bias where it moved the margin of ``method`` (the learned path or the blend)."""
    if not result.learned_bias_db or not (method.startswith("piunet") or method == "blend"):
        return ""
    return f"; the model's file says one scale down understates the learned path by {result.learned_bias_db:.2f} dB"
