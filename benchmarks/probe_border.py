"""Border band (9 output px) vs interior PSNR on the real-date benchmark, for the reference date
upsampled alone (bicubic: it cannot make border lines) and for IBP: how much of the gap is the content
of the crops' edges rather than an artefact.

    cd benchmarks && ../.venv/bin/python probe_border.py
"""
import statistics
import torch
from common import s2_stacks, S2_DATA_RANGE
from stacksr.core.baselines import choose_ibp_iterations, ibp
from stacksr.core.degradation import upsample_bicubic
from stacksr.core.stack_ops import temporal_fill
from stacksr.core.registration import register_stack
from stacksr.core.params import REGISTRATION_QUALITY
from stacksr.core.metrics import border_and_interior_psnr
rows = {"bicubic": [], "ibp": [], "ibp (iterations chosen)": []}
for name, st in s2_stacks():
    reg = register_stack(st.lr, st.valid, 0); used = reg.kept(REGISTRATION_QUALITY.default); used[0] = True
    outs = {"bicubic": upsample_bicubic(temporal_fill(st.lr[:1], st.valid[:1]), 3)[0],
            "ibp": ibp(st.lr[used], st.valid[used], 3, reg.shifts[used])}
    n, _ = choose_ibp_iterations(st.lr[used], st.valid[used], 3, reg.shifts[used])
    outs["ibp (iterations chosen)"] = ibp(st.lr[used], st.valid[used], 3, reg.shifts[used], iterations=n)
    for k, v in outs.items():
        b, i = border_and_interior_psnr(v.numpy(), st.hr.numpy(), 9, S2_DATA_RANGE)
        rows[k].append((b, i))
    print(name, {k: tuple(round(x, 2) for x in v[-1]) for k, v in rows.items()}, flush=True)
for k, v in rows.items():
    print(k, "border", round(statistics.mean(b for b, _ in v), 2), "interior", round(statistics.mean(i for _, i in v), 2))
