"""Replay ``auto``'s choice on stored quality runs: what a changed rule would pick, without running any method.

Every quality run (``run.py``, suites static ... selection-realdates) stores each stack's validation (held-out and
one scale down) beside every method's true cPSNR, so a rule of :mod:`method_choice` can be tried on all of them in
a second. Prints, per kind, auto's mean cPSNR, auto - best single method, picks and the worst stack against the
second best, as the quality table does, for the shipped rule; to try another, add it to ``variants`` (a function of
a stored row that returns a method name).

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/replay_auto.py results/run_session13.json
"""
from __future__ import annotations

import json
import statistics
import sys

from stacksr.core.jobs import method_choice
from stacksr.core.jobs.validation import MethodScore, ValidationResult

from quality import group


def result_of(v: dict) -> ValidationResult:
    """The stored validation dict of one stack as the object :func:`method_choice.pick` reads."""
    def scores(d):
        return [MethodScore(m, s["rmse"] if s["rmse"] is not None else float("inf"), s["frame_rmse"], s["seconds"],
                            s["gain_db"] if s["gain_db"] is not None else float("nan"),
                            s["gain_spread_db"] if s["gain_spread_db"] is not None else float("nan"))
                for m, s in d.items()]
    return ValidationResult(scores(v.get("methods", {})), v["frames_scored"], v["heldout_pixels"],
                            tuple(v["window_input_px"]), list(v.get("notes", [])), scores(v.get("one_scale_down", {})))


def table(rows: list[dict], choose) -> list[str]:
    out = []
    kinds = list(dict.fromkeys(group(r) for r in rows))
    for kind in kinds:
        rs = [r for r in rows if group(r) == kind]
        autos = []
        for r in rs:
            c = choose(r)
            c = "ibp" if c == "ibp-bank" else c
            autos.append(r["truth"][c])
        means = {m: statistics.mean(r["truth"][m] for r in rs) for m in rs[0]["truth"]}
        hits = sum(a >= max(r["truth"].values()) - 1e-9 for a, r in zip(autos, rs))
        worst = min(a - sorted(r["truth"].values())[-2] for a, r in zip(autos, rs))
        a = statistics.mean(autos)
        out.append(f"  {kind:22s} auto {a:6.2f}  vs best {a - max(means.values()):+.2f}  picks {hits}/{len(rs)}  "
                   f"worst vs 2nd {worst:+.2f}")
    return out


def main(paths: list[str]) -> None:
    rows = [r for p in paths for r in json.load(open(p))["results"]["quality"]["rows"] if "validation" in r]
    variants = {"shipped": lambda r: method_choice.pick(result_of(r["validation"]))}
    for name, choose in variants.items():
        print(name)
        print("\n".join(table(rows, choose)))


if __name__ == "__main__":
    main(sys.argv[1:])
