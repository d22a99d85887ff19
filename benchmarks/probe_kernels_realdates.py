"""Kernel estimation on the real-date benchmark: the joint estimate over every date (what the cached bank of
bench_learned holds), the joint estimate over the dates the job keeps (registration quality), per-image
estimation of the kept dates, and the default isotropic PSF; normalised L2 error against the true kernels,
on the kept dates.

    cd benchmarks && ../.venv/bin/python probe_kernels_realdates.py
"""
import os
import statistics

import torch

from common import RESULTS, s2_stacks, save
from stacksr.core.classic.baselines import default_psf
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.estimation.kernel_estimation import estimate_kernels
from stacksr.core.degradation.kernels import kernel_errors
from stacksr.core.params import REGISTRATION_QUALITY
from stacksr.core.classic.registration import register_stack

flow = load_fkp(default_fkp_path(3), 3)
bank_all = torch.load(os.path.join(RESULTS, "bank_realdates.pt"), weights_only=True)
errs = {"joint, every date": [], "joint, kept dates": [], "per image, kept dates": [], "default PSF": []}
offset = 0
for name, st in s2_stacks():
    n = len(st.lr)
    reg = register_stack(st.lr, st.valid, 0)
    used = reg.kept(REGISTRATION_QUALITY.default)
    used[0] = True
    idx = used.nonzero().flatten().tolist()
    kept_joint = estimate_kernels(st.lr[used], st.valid[used], flow, 3, "joint", seed=0).kernels \
        if len(idx) > 1 else estimate_kernels(st.lr[used], st.valid[used], flow, 3, "per-image", seed=0).kernels
    per_image = estimate_kernels(st.lr[used], st.valid[used], flow, 3, "per-image", seed=0).kernels
    for j, t in enumerate(idx):
        true = st.kernels[t].numpy()
        errs["joint, every date"].append(kernel_errors(bank_all[offset + t].numpy(), true, 3)["nl2"])
        errs["joint, kept dates"].append(kernel_errors(kept_joint[j].numpy(), true, 3)["nl2"])
        errs["per image, kept dates"].append(kernel_errors(per_image[j].numpy(), true, 3)["nl2"])
        errs["default PSF"].append(kernel_errors(default_psf(3).numpy(), true, 3)["nl2"])
    offset += n
    print(name, len(idx), {k: round(statistics.mean(v[-len(idx):]), 3) for k, v in errs.items()}, flush=True)
summary = {k: statistics.mean(v) for k, v in errs.items()}
print(summary)
save("kernels_realdates", {"summary": summary, "per_frame": errs})
