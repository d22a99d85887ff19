"""Probe (issues 26, 30): is a weighted mean of IBP's and the learned path's outputs better than either, on every
benchmark stack and the selection set, and does one scale down see it?

Full scale: cPSNR of (1 - w) IBP + w PIUNet+TTF for w in 0, 0.25, 0.5, 0.75, 1 (each method as the job runs it).
One scale down: the same blends of the two candidates' coarse outputs, scored on the reference's own pixels.

    cd benchmarks && ../.venv/bin/python probe_blend.py [kinds, comma-separated] [tag]
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace

from common import save
from quality import stacks_as_the_job_sets_them_up
from stacksr.core.classic.baselines import IBP_CANDIDATES
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.jobs.method_choice import Setup, central_window, runners
from stacksr.core.jobs.validation import validate_one_scale_down
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.metrics import cpsnr

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


KINDS = ("static", "realdates", "realsensor", "selection")


def main(kinds: tuple[str, ...] = KINDS, tag: str = "") -> None:
    rows = []
    for kind, name, st, job in stacks_as_the_job_sets_them_up(kinds):
        s = st.scale
        net = load_model(base_model_path(s), s)[0]
        flow = load_fkp(default_fkp_path(s), s)
        setup = Setup(s, 0, job.shifts, job.psf, job.iterations, True, None, net, flow, TTFConfig())
        run = runners(setup)
        ibp, learned = run["ibp"](job.lr, job.valid), run["piunet+ttf"](job.lr, job.valid)
        full = {str(w): cpsnr(((1 - w) * ibp + w * learned).numpy(), st.hr.numpy(), max_shift=3,
                              data_range=st.data_range, fit_gain=st.fit_gain).cpsnr for w in WEIGHTS}
        win = central_window(tuple(job.lr.shape[-2:]))
        f, v = job.lr[:, win[0], win[1]], job.valid[:, win[0], win[1]]
        coarse = replace(setup, shifts=None if job.shifts is None else job.shifts / s)
        outs = {}

        def keep(key, fn):
            def wrapped(a, b):
                outs[key] = fn(a, b)
                return outs[key]
            return wrapped

        cands = {"bicubic-ref": runners(coarse)["bicubic-ref"], "piunet+ttf": keep("L", runners(coarse)["piunet+ttf"])}
        cands.update({f"ibp@{k}": keep(k, runners(replace(coarse, ibp_iterations=k))["ibp"]) for k in IBP_CANDIDATES})
        scores = {sc.method: sc.rmse for sc in validate_one_scale_down(cands, f, v, 0, s, job.psf)}
        best_k = min(IBP_CANDIDATES, key=lambda k: scores.get(f"ibp@{k}", math.inf))
        blends = {f"blend{w}": (lambda a, b, w=w: (1 - w) * outs[best_k] + w * outs["L"]) for w in WEIGHTS[1:-1]}
        blends["bicubic-ref"] = cands["bicubic-ref"]
        coarse_scores = {sc.method: sc.rmse for sc in validate_one_scale_down(blends, f, v, 0, s, job.psf)}
        coarse_scores.update({"ibp": scores[f"ibp@{best_k}"], "piunet+ttf": scores["piunet+ttf"]})
        rows.append({"kind": kind, "stack": name, "scale": st.scale, "full": full, "coarse": coarse_scores})
        print(kind, name, {k: round(x, 2) for k, x in full.items()}, flush=True)
    print(save("probe_blend" + (f"_{tag}" if tag else ""), {"rows": rows, "ttf_iterations": TTFConfig().iterations}))


if __name__ == "__main__":
    main(tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else KINDS, sys.argv[2] if len(sys.argv) > 2 else "")
