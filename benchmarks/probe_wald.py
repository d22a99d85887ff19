"""Probe (issue 30): does validation one scale down (Wald's protocol) see what held-out LR blocks do not?

Every stack's kept LR frames are degraded once more (default PSF, x scale) to a coarse stack; every candidate
super-resolves the coarse stack back to LR size, as the job would run it, and is scored against the reference
date's own LR pixels (no other date's, so no date similarity is rewarded). The validated gain over the
reference date upsampled alone is then compared with the true gain of the same method on the LR -> HR task
(the truth scores of ``results/auto_shipped_x2mixed.json``: the same shipped models).

    cd benchmarks && PYTHONPATH=../.build/pkg ../.venv/bin/python probe_wald.py
"""
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

from bench_auto import load_kind, spearman
from common import kept_frames, save
from stacksr.core.classic.baselines import default_psf
from stacksr.core.degradation.operators import blur_downsample, gaussian_kernels
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.jobs.method_choice import Setup, central_window, runners
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf_config import TTFConfig

EDGE = 2  # coarse px left out along the edges


def wald_scores(lr, valid, shifts, s, net, flow, iters, cr_sigma=None):
    psf = default_psf(s)
    crk = psf if cr_sigma is None else gaussian_kernels(cr_sigma * s, cr_sigma * s, 0.0, psf.shape[-1], s)
    win = central_window(tuple(lr.shape[-2:]))
    lr, valid = lr[:, win[0], win[1]], valid[:, win[0], win[1]]
    h, w = (lr.shape[-2] // s) * s, (lr.shape[-1] // s) * s
    lr, valid = lr[:, :h, :w], valid[:, :h, :w]
    cr = blur_downsample(lr, crk, s)
    cvalid = -F.max_pool2d(-valid.float()[:, None], s)[:, 0] > 0.5
    setup = Setup(s, 0, None if shifts is None else shifts / s, psf, iters, True, None, net, flow, TTFConfig())
    untuned = runners(Setup(s, 0, None if shifts is None else shifts / s, psf, iters, True, None, net, None, None))
    cands = {**runners(setup), "piunet": untuned["piunet"]}
    m = valid[0].clone()
    e = EDGE * s
    m[:e], m[-e:], m[:, :e], m[:, -e:] = False, False, False, False
    out = {}
    for name, run in cands.items():
        t0 = time.perf_counter()
        sr = run(cr, cvalid)
        rmse = float(((sr - lr[0])[m] ** 2).mean().sqrt())
        out[name] = {"rmse": rmse, "seconds": round(time.perf_counter() - t0, 2)}
    base = out["bicubic-ref"]["rmse"]
    for d in out.values():
        d["gain_db"] = 20 * math.log10(base / d["rmse"]) if d["rmse"] > 0 else float("inf")
    return out, tuple(cr.shape)


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="static,realdates,realsensor")
    ap.add_argument("--cr-sigma", type=float, default=None, help="coarse-stack Gaussian sigma / scale (default: the PSF)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--truth", default=os.path.join(os.path.dirname(__file__), "results", "auto_shipped_x2mixed.json"),
                    help="a bench_auto result with the same models (truth scores and held-out validation)")
    args = ap.parse_args()
    truth_rows = json.load(open(args.truth))["rows"]
    truth = {(r["kind"], r["stack"]): r for r in truth_rows}
    rows = []
    for kind in args.kinds.split(","):
        for name, st in load_kind(kind):
            s = st.scale
            lr, valid, shifts = kept_frames(st.lr, st.valid)
            tr = truth[(kind, name)]
            iters = 40
            net = load_model(base_model_path(s), s)[0]
            flow = load_fkp(default_fkp_path(s), s)
            scores, crshape = wald_scores(lr, valid, shifts if lr.shape[0] > 1 else None, s, net, flow, iters, args.cr_sigma)
            row = {"kind": kind, "stack": name, "coarse": crshape, "truth": tr["truth"], "wald": scores,
                   "heldout": {m: d["gain_db"] for m, d in tr["validation"]["methods"].items()}}
            rows.append(row)
            print(kind, name, crshape, {m: round(v, 2) for m, v in tr["truth"].items()},
                  {m: round(d["gain_db"], 2) for m, d in scores.items()}, flush=True)
    report(rows)
    save("probe_wald" + args.tag, {"args": vars(args), "rows": rows, "date": time.strftime("%Y-%m-%d")})


def report(rows):
    for label, keyf in (("wald", lambda r, m: r["wald"].get(m, {}).get("gain_db")),
                        ("heldout", lambda r, m: r["heldout"].get(m))):
        pred, true = [], []
        for r in rows:
            b = r["truth"]["bicubic-ref"]
            for m in r["truth"]:
                g = keyf(r, m)
                if m != "bicubic-ref" and g is not None and math.isfinite(g):
                    pred.append(g)
                    true.append(r["truth"][m] - b)
        print(f"{label}: Spearman {spearman(pred, true):.2f} ({len(pred)} pairs)")
    for kind in dict.fromkeys(r["kind"] + (" " + r["stack"].split("_")[0] if r["kind"] == "realsensor" else "")
                              for r in rows):
        rs = [r for r in rows if r["kind"] + (" " + r["stack"].split("_")[0] if r["kind"] == "realsensor" else "") == kind]
        best = statistics.mean(max(r["truth"].values()) for r in rs)
        lowest = statistics.mean(r["truth"][min(r["wald"], key=lambda m: r["wald"][m]["rmse"])] for r in rs)
        hits = sum(min(r["wald"], key=lambda m: r["wald"][m]["rmse"]) == max(r["truth"], key=r["truth"].get) for r in rs)
        print(f"{kind}: oracle {best:.2f}, lowest wald error {lowest:.2f}, hits {hits}/{len(rs)}")


if __name__ == "__main__":
    main()
