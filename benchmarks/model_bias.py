"""What each shipped model file states about judging and blending it (``model_files.Calibration``), measured on stored
runs of the selection sets (never a benchmark) and written into the file: how much validation one scale down
understates the model against IBP (``model_files.ONE_SCALE_DOWN_BIAS``), and the blend's learned share that scored
best with it (``model_files.BLEND_SHARE``, from ``probe_blend.py`` runs).

For every selection stack where the learned path (PIUNet + TTF) and IBP were both scored one scale down, the bias is
the learned path's true gain over IBP (cPSNR against the truth) less its gain one scale down (the same comparison on
the coarse stack, where the target is the reference image itself); the model's bias is the median over its scale's
stacks. ``auto`` lowers the learned path's margin by it (``method_choice.margins``). The blend's share: of the weights
``probe_blend.py`` scored, the one with the highest mean cPSNR over the scale's selection stacks. The runs must have
been made with the models as shipped now.

    cd benchmarks && PYTHONPATH=../.build/pkg ../.venv/bin/python model_bias.py results/run_session15_wide.json \\
        results/run_session14.json --blend results/probe_blend_selection_wide.json \\
        results/probe_blend_selection_ttf150.json     # prints; --write stores both in models/piunet_base_x<scale>.pt
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics

import torch

from stacksr.core.io.atomic_files import atomic_output
from stacksr.core.learned.model_files import BLEND_SHARE, ONE_SCALE_DOWN_BIAS, base_model_path

LEARNED = "piunet+ttf"


def biases(rows: list[dict]) -> dict[int, list[float]]:
    """Scale -> the per-stack bias (dB) of every selection row that scored the learned path and IBP one scale down."""
    out: dict[int, list[float]] = {}
    for r in rows:
        coarse = (r.get("validation") or {}).get("one_scale_down") or {}
        if not r["kind"].startswith("selection") or not all((coarse.get(m) or {}).get("rmse") for m in (LEARNED, "ibp")):
            continue
        one_scale_down = 20 * math.log10(coarse["ibp"]["rmse"] / coarse[LEARNED]["rmse"])
        out.setdefault(r["scale"], []).append(r["truth"][LEARNED] - r["truth"]["ibp"] - one_scale_down)
    return out


def blend_means(rows: list[dict]) -> dict[int, tuple[dict[str, float], int]]:
    """Scale -> (learned share -> mean cPSNR, stacks) over the selection rows of probe_blend runs."""
    def scale_of(r):  # runs before the probe recorded it: the Romania stacks are x2, the others x3
        return r.get("scale", 2 if r["stack"].startswith("romania") else 3)

    out = {}
    for scale in sorted({scale_of(r) for r in rows}):
        rs = [r for r in rows if r["kind"].startswith("selection") and scale_of(r) == scale]
        if rs:
            out[scale] = ({w: statistics.mean(r["full"][w] for r in rs) for w in rs[0]["full"]}, len(rs))
    return out


def record(value: float, stacks: int, runs: list[str], kinds: list[str], how: str, **more) -> dict:
    return {"value": value, **more, "stacks": stacks, "kinds": kinds, "runs": runs,
            "measured": datetime.date.today().isoformat(), "how": how}


def write(scale: int, entries: dict) -> str:
    path = base_model_path(scale)
    payload = torch.load(path, weights_only=True)
    payload.setdefault("extra", {}).update(entries)
    with atomic_output(path, ".pt") as tmp:
        torch.save(payload, tmp)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="results/run_<tag>.json of quality runs with selection suites")
    ap.add_argument("--blend", nargs="*", default=[], help="results/probe_blend_<tag>.json of the selection suites")
    ap.add_argument("--write", action="store_true", help="store each scale's values in its shipped model file")
    opts = ap.parse_args()
    rows = [r for p in opts.runs for r in json.load(open(p))["results"]["quality"]["rows"]]
    probe = [r for p in opts.blend for r in json.load(open(p))["rows"]]
    shares = blend_means(probe)
    for scale, values in sorted(biases(rows).items()):
        entries = {}
        kinds = sorted({r["kind"] for r in rows if r["scale"] == scale and r["kind"].startswith("selection")})
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        entries[ONE_SCALE_DOWN_BIAS] = record(
            round(statistics.median(values), 2), len(values), [os.path.basename(p) for p in opts.runs], kinds,
            "median over the stacks of the learned path's (PIUNet + TTF) true gain over IBP less its gain one scale "
            "down, dB (benchmarks/model_bias.py)", q25=round(q[0], 2), q75=round(q[2], 2))
        print(f"x{scale}: one scale down understates it by {statistics.median(values):+.2f} dB (quartiles "
              f"{q[0]:+.2f} / {q[2]:+.2f}, {len(values)} stacks of {', '.join(kinds)})")
        if scale in shares:
            means, n = shares[scale]
            best = max(means, key=means.get)
            entries[BLEND_SHARE] = record(
                float(best), n, [os.path.basename(p) for p in opts.blend],
                sorted({r["kind"] for r in probe if r["kind"].startswith("selection")}),
                "the blend's learned share with the highest mean cPSNR over the stacks (benchmarks/probe_blend.py)",
                means={w: round(v, 3) for w, v in means.items()})
            print(f"  blend share {best} (mean cPSNR by share: "
                  + ", ".join(f"{w} {v:.2f}" for w, v in means.items()) + f"; {n} stacks)")
        if opts.write and base_model_path(scale):
            print("  written to", write(scale, entries))


if __name__ == "__main__":
    main()
