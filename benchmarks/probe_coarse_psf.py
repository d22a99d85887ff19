"""Probe (issue 30): how the coarse stack's PSF and the learned candidate's TTF length move the one-scale-down
validation, on every benchmark stack and the selection set.

For each stack, as the job sets it up (kept frames, registration, robust fusion, the central validation window),
the window is degraded once more with an isotropic Gaussian of sigma ``f x scale`` for each ``f`` of ``--sigmas``
and every candidate of ``auto`` is scored one scale down (:func:`validation.validate_one_scale_down`): the
reference alone, mean-bicubic, IBP at each count, the untuned network, and the network with TTF at its default
length and at a short one. Truth scores come from a quality run with the same models (``--truth``).

    cd benchmarks && ../.venv/bin/python probe_coarse_psf.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

import torch

from common import RESULTS, save
from quality import stacks_as_the_job_sets_them_up
from stacksr.core.classic.baselines import IBP_CANDIDATES
from stacksr.core.convention import default_kernel_size
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.degradation.operators import gaussian_kernels
from stacksr.core.jobs.method_choice import Setup, central_window, runners
from stacksr.core.jobs.validation import validate_one_scale_down
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf_config import TTFConfig

SHORT_TTF = TTFConfig(kernel_warmup=10, iterations=15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="static,realdates,realsensor,selection")
    ap.add_argument("--sigmas", default="0.35,0.45,0.55")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--truth", default="run_session12.json,run_refrule.json")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    truth = {}
    for f in args.truth.split(","):
        for r in json.load(open(os.path.join(RESULTS, f)))["results"]["quality"]["rows"]:
            truth.setdefault((r["kind"], r["stack"]), r["truth"])
    rows = []
    for kind, name, st, job in stacks_as_the_job_sets_them_up(args.kinds.split(",")):
        s = st.scale
        net = load_model(base_model_path(s), s)[0]
        flow = load_fkp(default_fkp_path(s), s)
        win = central_window(tuple(job.lr.shape[-2:]))
        f, v = job.lr[:, win[0], win[1]], job.valid[:, win[0], win[1]]
        shifts = None if job.shifts is None else job.shifts / s
        coarse = Setup(s, 0, shifts, job.psf, job.iterations, True, None, net, flow, TTFConfig())
        cands = {m: r for m, r in runners(coarse).items() if m in ("bicubic-ref", "bicubic", "piunet+ttf")}
        cands["piunet+ttf-short"] = runners(replace(coarse, ttf=SHORT_TTF))["piunet+ttf"]
        cands["piunet"] = runners(replace(coarse, flow=None))["piunet"]
        cands.update({f"ibp@{k}": runners(replace(coarse, ibp_iterations=k))["ibp"] for k in IBP_CANDIDATES})
        row = {"kind": kind, "stack": name, "frames_used": int(job.lr.shape[0]), "truth": truth.get((kind, name)),
               "coarse": {}}
        for sig in (float(x) for x in args.sigmas.split(",")):
            psf = gaussian_kernels(sig * s, sig * s, 0.0, default_kernel_size(s), s)
            scores = validate_one_scale_down(cands, f, v, 0, s, psf)
            row["coarse"][str(sig)] = {sc.method: {"rmse": sc.rmse, "seconds": round(sc.seconds, 2)} for sc in scores}
        rows.append(row)
        print(kind, name, {k: {m: round(d["rmse"], 4) for m, d in c.items() if not m.startswith("ibp@")}
                           for k, c in row["coarse"].items()}, flush=True)
    print(save(f"probe_coarse_psf{args.tag}", {"args": vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
