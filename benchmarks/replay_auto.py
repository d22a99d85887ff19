"""Replay ``auto``'s choice on stored quality runs: what a changed rule would pick, without running any method.

Every quality run (``run.py``, suites static ... selection-realdates) stores each stack's validation (held-out and
one scale down) beside every method's true cPSNR, so a rule of :mod:`method_choice` can be tried on all of them in
a second. Prints the quality suites' own table (per kind every method's and auto's mean cPSNR, auto - best single
method, picks, the worst stack against the second best) for the shipped rule; to try another, add it to
``variants`` (a function of a stored row that returns a method name).

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/replay_auto.py results/run_session13.json
"""
from __future__ import annotations

import functools
import json
import sys

import torch

from stacksr.core.jobs import method_choice
from stacksr.core.jobs.validation import MethodScore, ValidationResult

from quality import report


def result_of(v: dict) -> ValidationResult:
    """The stored validation dict of one stack as the object :func:`method_choice.pick` reads."""
    def scores(d):
        return [MethodScore(m, s["rmse"] if s["rmse"] is not None else float("inf"), s["frame_rmse"], s["seconds"],
                            s["gain_db"] if s["gain_db"] is not None else float("nan"),
                            s["gain_spread_db"] if s["gain_spread_db"] is not None else float("nan"))
                for m, s in d.items()]
    return ValidationResult(scores(v.get("methods", {})), v["frames_scored"], v["heldout_pixels"],
                            tuple(v["window_input_px"]), list(v.get("notes", [])), scores(v.get("one_scale_down", {})),
                            v.get("learned_bias_db", 0.0), v.get("blend_share"))


def replayed(rows: list[dict], choose) -> list[dict]:
    """The stored rows with auto's choice (and its truth score) as ``choose`` (a function of a row) makes it."""
    out = []
    for r in rows:
        chosen = choose(r)
        chosen = "ibp" if chosen == "ibp-bank" else chosen
        out.append({**r, "chosen": chosen, "auto": r["truth"][chosen]})
    return out


@functools.cache
def shipped_bias(scale: int) -> float:
    """The one-scale-down bias the shipped model file of ``scale`` states now (0 without one)."""
    from stacksr.core.learned.model_files import base_model_path, calibration

    path = base_model_path(scale)
    return calibration(torch.load(path, weights_only=True)).one_scale_down_bias_db if path else 0.0


def with_model_bias(r: dict) -> str:
    """The shipped rule with the bias the scale's shipped model file states now (for runs made before it did; the
    blend's share cannot be replayed: the blend's score one scale down was made with the share of its run)."""
    result = result_of(r["validation"])
    if "learned_bias_db" not in r["validation"]:
        result.learned_bias_db = shipped_bias(r["scale"])
    return method_choice.pick(result)


def main(paths: list[str]) -> None:
    rows = [r for p in paths for r in json.load(open(p))["results"]["quality"]["rows"] if "validation" in r]
    variants = {"shipped": lambda r: method_choice.pick(result_of(r["validation"])),
                "shipped, with the model files' one-scale-down bias": with_model_bias}
    for name, choose in variants.items():
        print(name)
        print("\n".join(report(replayed(rows, choose))))


if __name__ == "__main__":
    main(sys.argv[1:])
