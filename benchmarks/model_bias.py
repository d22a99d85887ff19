"""How much validation one scale down understates each shipped model against IBP, measured on stored quality runs of
the selection sets (never a benchmark), and written into the model file (``model_files.ONE_SCALE_DOWN_BIAS``).

For every selection stack where the learned path (PIUNet + TTF) and IBP were both scored one scale down, the bias is
the learned path's true gain over IBP (cPSNR against the truth) less its gain one scale down (the same comparison on
the coarse stack, where the target is the reference image itself); the model's bias is the median over its scale's
stacks. ``auto`` lowers the learned path's margin by it (``method_choice.margins``). The runs must have been made with
the models as shipped now (their ``--model base``).

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/model_bias.py results/run_session15_wide.json \\
        results/run_session14.json            # prints; --write stores it in models/piunet_base_x<scale>.pt
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
from stacksr.core.learned.model_files import ONE_SCALE_DOWN_BIAS, base_model_path

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


def summary(values: list[float], runs: list[str], kinds: list[str]) -> dict:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"db": round(statistics.median(values), 2), "q25": round(q[0], 2), "q75": round(q[2], 2),
            "stacks": len(values), "kinds": kinds, "runs": runs, "measured": datetime.date.today().isoformat(),
            "how": "median over the stacks of the learned path's (PIUNet + TTF) true gain over IBP less its gain "
                   "one scale down (benchmarks/model_bias.py)"}


def write(scale: int, record: dict) -> str:
    path = base_model_path(scale)
    payload = torch.load(path, weights_only=True)
    payload.setdefault("extra", {})[ONE_SCALE_DOWN_BIAS] = record
    with atomic_output(path, ".pt") as tmp:
        torch.save(payload, tmp)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="results/run_<tag>.json of quality runs with selection suites")
    ap.add_argument("--write", action="store_true", help="store each scale's bias in its shipped model file")
    opts = ap.parse_args()
    rows = [r for p in opts.runs for r in json.load(open(p))["results"]["quality"]["rows"]]
    for scale, values in sorted(biases(rows).items()):
        kinds = sorted({r["kind"] for r in rows if r["scale"] == scale and r["kind"].startswith("selection")})
        record = summary(values, [os.path.basename(p) for p in opts.runs], kinds)
        print(f"x{scale}: {record['db']:+.2f} dB (quartiles {record['q25']:+.2f} / {record['q75']:+.2f}, "
              f"{record['stacks']} stacks of {', '.join(kinds)})")
        if opts.write and base_model_path(scale):
            print("  written to", write(scale, record))


if __name__ == "__main__":
    main()
