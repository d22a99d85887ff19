"""Probe (issue 30): IBP's iteration count chosen one scale down instead of on held-out pixels of other dates.

One scale down the target (the reference date) is known, so the count that best super-resolves the coarse stack
back to the input can be read off; held-out pixels of other dates prefer few iterations on real dates. For every
stack of the three kinds: IBP (robust fusion, default PSF) with the held-out count and with the one-scale-down
count, scored against the truth.

    cd benchmarks && PYTHONPATH=../.build/pkg ../.venv/bin/python probe_ibp_count_coarse.py
"""
import statistics
import time
from dataclasses import replace

from bench_auto import group, stacks_as_the_job_sets_them_up
from common import save
from stacksr.core.classic.baselines import IBP_CANDIDATES
from stacksr.core.jobs.method_choice import Setup, central_window, runners
from stacksr.core.metrics import cpsnr
from stacksr.core.jobs.validation import REFERENCE_BASELINE, validate_one_scale_down


def main() -> None:
    rows = []
    for kind, name, st, job in stacks_as_the_job_sets_them_up(min_frames=2):
        s = st.scale
        lr, valid, shifts, psf, heldout = job.lr, job.valid, job.shifts, job.psf, job.iterations
        win = central_window(tuple(lr.shape[-2:]))
        coarse = Setup(s, 0, shifts / s, psf, heldout)
        cands = {REFERENCE_BASELINE: runners(coarse)[REFERENCE_BASELINE]}
        cands.update({f"ibp@{k}": runners(replace(coarse, ibp_iterations=k))["ibp"] for k in IBP_CANDIDATES})
        scores = validate_one_scale_down(cands, lr[:, win[0], win[1]], valid[:, win[0], win[1]], 0, s, psf)
        if not scores:
            continue
        down = int(min((x for x in scores if x.method.startswith("ibp@")), key=lambda x: x.rmse).method[4:])
        truth = {}
        for label, k in (("heldout", heldout), ("one_scale_down", down)):
            sr = runners(Setup(s, 0, shifts, psf, k))["ibp"](lr, valid)
            truth[label] = cpsnr(sr.numpy(), st.hr.numpy(), max_shift=3, data_range=st.data_range,
                                 fit_gain=st.fit_gain).cpsnr
        rows.append({"kind": kind, "stack": name, "counts": {"heldout": heldout, "one_scale_down": down},
                     "truth": truth})
        print(kind, name, rows[-1]["counts"], {k: round(v, 2) for k, v in truth.items()}, flush=True)
    for g in dict.fromkeys(group(r) for r in rows):
        rs = [r for r in rows if group(r) == g]
        print(f"{g}: held-out count {statistics.mean(r['truth']['heldout'] for r in rs):.2f}, one scale down "
              f"{statistics.mean(r['truth']['one_scale_down'] for r in rs):.2f} ({len(rs)} stacks)")
    save("probe_ibp_count_coarse", {"rows": rows, "date": time.strftime("%Y-%m-%d")})


if __name__ == "__main__":
    main()
