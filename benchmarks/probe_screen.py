"""How much TTF raises the learned path's validated score: the untuned network and the network after TTF,
validated as `auto` validates (core/validation.py), next to IBP's, on every stack of the three kinds. Sizes
the screening that lets `auto` skip the learned candidate's TTF when it cannot win (issue 30).

    cd benchmarks && ../.venv/bin/python probe_screen.py
"""
import json
import math
import time

from bench_auto import stacks_as_the_job_sets_them_up
from common import save
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.jobs.method_choice import Setup, runners
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.jobs.validation import REFERENCE_BASELINE, validate


def main() -> None:
    rows = []
    for kind, name, st, job in stacks_as_the_job_sets_them_up(min_frames=2):
        s = st.scale
        lr, valid, shifts, psf, weights, iters = job.lr, job.valid, job.shifts, job.psf, job.weights, job.iterations
        net = load_model(base_model_path(s), s)[0]
        flow = load_fkp(default_fkp_path(s), s)
        tuned = runners(Setup(s, 0, shifts, psf, iters, True, None, net, flow, TTFConfig()))
        untuned = runners(Setup(s, 0, shifts, psf, iters, True, None, net, None, None))
        cands = {REFERENCE_BASELINE: tuned[REFERENCE_BASELINE], "ibp": tuned["ibp"], "piunet": untuned["piunet"],
                 "piunet+ttf": tuned["piunet+ttf"]}
        res = validate(cands, lr, valid, 0, s, shifts, psf, weights)
        db = {m: 20 * math.log10(res.score("ibp").rmse / res.score(m).rmse) for m in ("piunet", "piunet+ttf")}
        rows.append({"kind": kind, "stack": name, "untuned_vs_ibp_db": db["piunet"],
                     "ttf_vs_ibp_db": db["piunet+ttf"], "ttf_raise_db": db["piunet+ttf"] - db["piunet"],
                     "seconds": {m: res.score(m).seconds for m in cands}})
        print(json.dumps(rows[-1]), flush=True)
    raises = [r["ttf_raise_db"] for r in rows]
    summary = {"max_raise_db": max(raises), "mean_raise_db": sum(raises) / len(raises), "rows": rows,
               "date": time.strftime("%Y-%m-%d")}
    print({k: v for k, v in summary.items() if k != "rows"})
    save("screen_ttf_raise", summary)


if __name__ == "__main__":
    main()
