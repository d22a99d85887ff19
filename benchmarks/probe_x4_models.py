"""Which x4 base model to ship (issue 26): there is no real x4 benchmark, so the shipped model and a later
pretraining checkpoint are compared on x4 versions of the two simulated kinds (frames cut from the Landsat 8 pan
image; real Sentinel-2 NDVI dates, simulated degradation), PIUNet + TTF as the job runs it by default, IBP beside.

    cd benchmarks && PYTHONPATH=../.build/pkg ../.venv/bin/python probe_x4_models.py MODEL [MODEL ...]
"""
import statistics
import sys
import time

import torch

from common import DATA_RANGE, S2_DATA_RANGE, as_the_job_sets_up, l8_stacks, s2_stacks, save
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.jobs.method_choice import Setup, runners
from stacksr.core.metrics import cpsnr
from stacksr.core.learned.model_files import load_model
from stacksr.core.learned.ttf_config import TTFConfig


def main() -> None:
    models = sys.argv[1:]
    flow = load_fkp(default_fkp_path(4), 4)
    kinds = {"static_x4": ([(n, st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool)) for n, st in
                            l8_stacks(400, scale=4)], DATA_RANGE),
             "realdates_x4": ([(n, st.hr, st.lr, st.valid) for n, st in s2_stacks(scale=4)], S2_DATA_RANGE)}
    rows = []
    for kind, (stacks, data_range) in kinds.items():
        for name, hr, lr_all, valid_all in stacks:
            job = as_the_job_sets_up(lr_all, valid_all, 4)
            lr, valid, shifts, psf, iters = job.lr, job.valid, job.shifts, job.psf, job.iterations
            truth = {}
            for label, path in [("ibp", None)] + [(m, m) for m in models]:
                net = load_model(path, 4)[0] if path else None
                run = runners(Setup(4, 0, shifts, psf, iters, True, None, net, flow if net else None, TTFConfig()))
                sr = run["piunet+ttf" if net else "ibp"](lr, valid)
                truth[label] = cpsnr(sr.numpy(), hr.numpy(), max_shift=4, data_range=data_range).cpsnr
            rows.append({"kind": kind, "stack": name, "truth": truth})
            print(kind, name, {k: round(v, 2) for k, v in truth.items()}, flush=True)
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        print(kind, {m: round(statistics.mean(r["truth"][m] for r in rs), 3) for m in rs[0]["truth"]})
    save("probe_x4_models", {"models": models, "rows": rows, "date": time.strftime("%Y-%m-%d")})


if __name__ == "__main__":
    main()
