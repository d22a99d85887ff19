"""Held-out validation of a whole super-resolution method on the user's own stack: how well its output
explains LR pixels it never saw.

A user has no HR truth, and the best method differs from stack to stack (BENCHMARKS.md: IBP on frames
of one image, mean-bicubic on a real PROBA-V scene, the learned path on some stacks of every kind). Every
method can be asked to predict what it did not see: a share of the blocks of every frame but the
reference is held out (the reference is the date the user asked for, and every candidate sees it whole),
each method runs on the rest, and its HR output, moved by each frame's registration and degraded with the
frame's kernel (the forward model of IBP and of TTF), is compared with the held-out LR pixels. A gain and
offset fitted per frame remove the dates' brightness differences; changed land (robust fusion's weights,
when given) and invalid pixels do not count; the frames' edges, whose scene lies partly outside the
raster, are left out.

The figure of merit is the held-out RMS error; its ratio to the reference date upsampled alone (the
output any user has without StackSR) is the validated gain in dB, with its spread over the held-out
frames.

Held-out pixels are other dates' pixels, so that measure also rewards looking like the other dates and cannot
see detail finer than the dates resolve: the learned path's gain on real sensors was invisible to it
(BENCHMARKS.md). :func:`validate_one_scale_down` judges super-resolution itself, on the date asked for: the
stack degraded once more, super-resolved back to its own size (Wald's protocol).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from ..degradation.operators import blur_downsample, degrade
from ..shapes import check_shape

HOLDOUT_BLOCK = 8  # LR px: blocks, not pixels, so the held-out pixels' neighbours do not give them away
HOLDOUT_SHARE = 0.25  # of every non-reference frame's blocks
EDGE = 3  # LR px along the raster's edges never scored (the kernel and the shifts reach beyond the raster)
REFERENCE_BASELINE = "bicubic-ref"  # the candidate the gain is measured against
COARSE_EDGE = 2  # coarse px along the edges whose output is not scored, one scale down
COARSE_MIN = 8  # coarse px: a smaller coarse stack is not validated


NOTHING_HELD_OUT = "no frame besides the reference has enough valid pixels to hold out"


@dataclass
class MethodScore:
    """One candidate's held-out errors: RMS error over all held-out pixels, per frame, and the gain."""

    method: str
    rmse: float
    frame_rmse: list[float]
    seconds: float
    gain_db: float = float("nan")  # over the reference date upsampled alone
    gain_spread_db: float = float("nan")  # standard deviation of the per-frame gains

    def to_dict(self) -> dict:
        return {"rmse": _round(self.rmse), "gain_db": _round(self.gain_db, 3),
                "gain_spread_db": _round(self.gain_spread_db, 3), "frame_rmse": [_round(v) for v in self.frame_rmse],
                "seconds": round(self.seconds, 2)}


@dataclass
class ValidationResult:
    """The candidates' scores (best first) and the held-out design."""

    scores: list[MethodScore]
    frames_scored: int
    pixels: int
    window: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)
    coarse: list[MethodScore] = field(default_factory=list)  # one scale down (:func:`validate_one_scale_down`)
    # how much one scale down understates the learned path's model against IBP (dB; its model file says, 0 unknown)
    learned_bias_db: float = 0.0
    blend_share: float | None = None  # the blend's learned share one scale down: its model file's (None: the default)

    @property
    def best(self) -> MethodScore:
        return self.scores[0]

    def score(self, method: str) -> MethodScore | None:
        return next((s for s in self.scores if s.method == method), None)

    def coarse_score(self, method: str) -> MethodScore | None:
        return next((s for s in self.coarse if s.method == method), None)

    def to_dict(self, chosen: str | None = None) -> dict:
        out = {"chosen": chosen or (self.best.method if self.scores else None), "frames_scored": self.frames_scored,
               "heldout_pixels": self.pixels, "window_input_px": list(self.window),
               "holdout": f"{HOLDOUT_SHARE:g} of the {HOLDOUT_BLOCK}-px blocks of every non-reference frame",
               "methods": {s.method: s.to_dict() for s in self.scores}, "notes": list(self.notes)}
        if self.coarse:
            out["one_scale_down"] = {s.method: s.to_dict() for s in self.coarse}
            out["learned_bias_db"] = self.learned_bias_db
            out["blend_share"] = self.blend_share
        return out


def _round(v: float, digits: int = 6) -> float | None:
    return None if not math.isfinite(v) else float(f"{v:.{digits}g}")


def holdout_blocks(valid: torch.Tensor, ref: int, seed: int = 0, share: float = HOLDOUT_SHARE,
                   block: int = HOLDOUT_BLOCK) -> torch.Tensor:
    """``(T, h, w)`` bool: the valid pixels held out, ``share`` of the ``block``-px blocks of every frame but
    ``ref``, drawn independently per frame (so every place stays seen by most frames), away from the edges."""
    check_shape("valid", valid, "T, h, w")
    T, h, w = valid.shape
    g = torch.Generator().manual_seed(seed)
    nb = (math.ceil(h / block), math.ceil(w / block))
    pick = torch.rand((T, *nb), generator=g) < share
    pick[ref] = False
    hold = pick.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w]
    inner = torch.zeros_like(valid)
    inner[:, EDGE:h - EDGE, EDGE:w - EDGE] = True
    return hold & valid & inner


def heldout_errors(hr: torch.Tensor, frames: torch.Tensor, hold: torch.Tensor, scale: int, shifts: torch.Tensor | None,
                   kernels: torch.Tensor, weights: torch.Tensor | None = None) -> list[tuple[int, float, float]]:
    """``(frame, weighted squared error sum, weight sum)`` of every frame with held-out pixels: ``hr``
    ``(s*h, s*w)`` moved by the frame's shift (LR px, ``shifts`` ``(T, 2)``), degraded with its kernel
    (``kernels`` ``(T, K, K)`` or one ``(K, K)``) and fitted to the held-out pixels with a gain and offset."""
    check_shape("frames", frames, "T, h, w")
    check_shape("hold", hold, "T, h, w", like=frames)
    T = frames.shape[0]
    k = kernels if kernels.dim() == 3 else kernels[None].expand(T, -1, -1)
    pred = degrade(hr.to(frames.dtype), k, scale, shifts)
    out = []
    for t in range(T):
        m = hold[t]
        if int(m.sum()) < 16:
            continue
        w = m.to(torch.float64) if weights is None else m * weights[t].to(torch.float64)
        sw = float(w.sum())
        if sw <= 0:
            continue
        p, y = pred[t].double(), frames[t].double()
        mp, my = float((w * p).sum()) / sw, float((w * y).sum()) / sw
        vp = float((w * (p - mp) ** 2).sum())
        gain = float((w * (p - mp) * (y - my)).sum()) / vp if vp > 0 else 0.0
        r = y - (my + gain * (p - mp))
        out.append((t, float((w * r ** 2).sum()), sw))
    return out


def _set_gains(scores: list[MethodScore]) -> None:
    """Every score's gain in dB over :data:`REFERENCE_BASELINE`'s, and its spread over the parts both were scored
    on (the held-out frames, or the window's quarters one scale down)."""
    base = next((s for s in scores if s.method == REFERENCE_BASELINE), None)
    if base is None:
        return
    for s in scores:
        if not s.frame_rmse or len(s.frame_rmse) != len(base.frame_rmse):
            continue
        s.gain_db = 20 * math.log10(base.rmse / s.rmse) if 0 < s.rmse < float("inf") else float("-inf")
        gains = [20 * math.log10(b / a) for a, b in zip(s.frame_rmse, base.frame_rmse)
                 if 0 < a < float("inf") and b > 0]
        s.gain_spread_db = float(torch.tensor(gains).std()) if len(gains) > 1 else 0.0


def _run_each(candidates, frames, valid, clock, check):
    """``(name, output, seconds)`` of every candidate run on ``frames`` with ``valid``, honouring ``check``
    (cancel) between them."""
    for name, run in candidates.items():
        if check is not None:
            check()
        t0 = clock()
        out = run(frames, valid)
        yield name, out, clock() - t0


def validate(candidates: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]], frames: torch.Tensor,
             valid: torch.Tensor, ref: int, scale: int, shifts: torch.Tensor | None, kernels: torch.Tensor,
             weights: torch.Tensor | None = None, seed: int = 0, clock: Callable[[], float] | None = None,
             check: Callable[[], None] | None = None) -> ValidationResult:
    """Score every candidate on held-out blocks of ``frames`` ``(T, h, w)`` (validity ``valid``, reference
    ``ref``); ``candidates`` map a method's name to a function ``(frames, valid) -> HR (s*h, s*w)`` that runs
    it on the frames with the held-out pixels marked invalid. Must include :data:`REFERENCE_BASELINE`.
    Best (lowest held-out RMS error) first."""
    check_shape("frames", frames, "T, h, w")
    check_shape("valid", valid, "T, h, w", like=frames)
    clock = clock or time.perf_counter
    hold = holdout_blocks(valid, ref, seed)
    if not hold.any():  # the reference alone (or nothing valid besides it): no candidate has anything to predict
        return ValidationResult([], 0, 0, tuple(frames.shape[-2:]), [NOTHING_HELD_OUT])
    seen = valid & ~hold
    scores = []
    for name, hr, seconds in _run_each(candidates, frames, seen, clock, check):
        errs = heldout_errors(hr, frames, hold, scale, shifts, kernels, weights)
        total, wsum = sum(e for _, e, _ in errs), sum(n for _, _, n in errs)
        rmse = math.sqrt(total / wsum) if wsum > 0 and torch.isfinite(hr).all() else float("inf")
        scores.append(MethodScore(name, rmse, [math.sqrt(e / n) for _, e, n in errs], seconds))
    _set_gains(scores)
    scores.sort(key=lambda s: s.rmse)
    frames_scored = len(scores[0].frame_rmse) if scores else 0
    notes = [] if frames_scored else [NOTHING_HELD_OUT]
    return ValidationResult(scores, frames_scored, int(hold.sum()), tuple(frames.shape[-2:]), notes)


def validate_one_scale_down(candidates: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
                            frames: torch.Tensor, valid: torch.Tensor, ref: int, scale: int, psf: torch.Tensor,
                            clock: Callable[[], float] | None = None,
                            check: Callable[[], None] | None = None) -> list[MethodScore]:
    """Wald's protocol: ``frames`` ``(T, h, w)`` blurred with ``psf`` ``(K, K)`` and decimated by ``scale`` once
    more; every candidate, built for that coarse stack (its shifts divided by the scale), super-resolves it back
    to input size and is scored on the reference's own valid pixels. Best first; gains over
    :data:`REFERENCE_BASELINE` (which must be a candidate). Empty when the coarse stack would be smaller than
    :data:`COARSE_MIN` px.

    The target is the date asked for, so what a method knows about finer detail counts, and nothing rewards
    looking like other dates. The coarse stack is degraded with the PSF IBP assumes, which flatters IBP (with a
    sharper one the learned path wins on every benchmark stack, with a wider one it loses on most): hence the
    margin ``auto`` asks of the learned path (:mod:`method_choice`)."""
    check_shape("frames", frames, "T, h, w")
    check_shape("valid", valid, "T, h, w", like=frames)
    clock = clock or time.perf_counter
    hc, wc = frames.shape[-2] // scale, frames.shape[-1] // scale
    if min(hc, wc) < COARSE_MIN:
        return []
    h, w = hc * scale, wc * scale
    fine, fine_valid = frames[:, :h, :w], valid[:, :h, :w]
    coarse = blur_downsample(fine, psf.to(frames.dtype), scale)
    coarse_valid = -F.max_pool2d(-fine_valid[:, None].float(), scale)[:, 0] > 0.5  # every fine pixel valid
    e = COARSE_EDGE * scale
    scored = fine_valid[ref].clone()
    scored[:e], scored[-e:], scored[:, :e], scored[:, -e:] = False, False, False, False
    if int(scored.sum()) < 16:
        return []
    # the window's quarters: the spread of a method's gain over them (there is one reference image)
    quarters = torch.zeros(h, w, dtype=torch.long)
    quarters[h // 2:] += 2
    quarters[:, w // 2:] += 1
    quarters = quarters[scored]
    target = fine[ref][scored].double()
    scores = []
    for name, out, seconds in _run_each(candidates, coarse, coarse_valid, clock, check):
        err = out[:h, :w][scored].double() - target
        ok = bool(torch.isfinite(err).all())
        rmse = float(err.pow(2).mean().sqrt()) if ok else float("inf")
        parts = [float(err[quarters == q].pow(2).mean().sqrt()) if ok else float("inf")
                 for q in range(4) if int((quarters == q).sum()) >= 16]
        scores.append(MethodScore(name, rmse, parts, seconds))
    _set_gains(scores)
    return sorted(scores, key=lambda s: s.rmse)


def quality_line(summary: dict) -> str:
    """One line for a front end from a super-resolution summary: the method used, its validated error and gain."""
    v = summary.get("validation")
    if not v:
        return f"{summary['method']}: no quality estimate (only the reference image is used)"
    m = v["methods"].get(summary["method"])
    coarse = (v.get("one_scale_down") or {}).get(summary["method"])
    if coarse is not None:  # it predicts the true gain better (BENCHMARKS.md: rank correlation 0.77 vs 0.56)
        return (f"{summary['method']}: one scale down, RMS error {coarse.get('rmse')} on the reference image's own "
                f"pixels, {coarse['gain_db']:+.2f} dB (+- {coarse.get('gain_spread_db') or 0.0:.2f}) over the "
                "reference image upsampled alone")
    if not v.get("frames_scored"):
        return f"{summary['method']}: no quality estimate (only the reference image is used)"
    m = m or {}
    gain, spread = m.get("gain_db"), m.get("gain_spread_db")
    text = f"{summary['method']}: held-out RMS error {m.get('rmse')}"
    if gain is not None:
        text += f", {gain:+.2f} dB (+- {spread:.2f}) over the reference image upsampled alone"
    return text + f" ({v['heldout_pixels']} held-out pixels of {v['frames_scored']} images)"
