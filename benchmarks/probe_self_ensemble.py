"""Probe: PIUNet + TTF with a geometric self-ensemble (the tuned network run on the stack turned by 0/90/180/270
degrees, each also mirrored; the outputs turned back and averaged) against the plain output, on the three kinds of
stack and the selection sets, as the job runs the learned path by default otherwise (BENCHMARKS.md, *self-ensemble*).

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/probe_self_ensemble.py static,realdates,realsensor
"""
from __future__ import annotations

import statistics
import sys
import time

import torch

from common import save
from quality import stacks_as_the_job_sets_them_up
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.learned.inference import predict
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf import test_time_finetune
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.metrics import cpsnr, flat_texture_ratio


def turned(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, (-2, -1))
    return x.flip(-1) if flip else x


def back(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = x.flip(-1) if flip else x
    return torch.rot90(x, -k, (-2, -1))


def main(kinds: list[str]) -> None:
    rows = []
    for kind, name, st, job in stacks_as_the_job_sets_them_up(tuple(kinds)):
        s = st.scale
        net = load_model(base_model_path(s), s)[0]
        flow = load_fkp(default_fkp_path(s), s)
        tuned = test_time_finetune(net, flow, job.lr, job.valid, 0, TTFConfig())[0]
        t0 = time.perf_counter()
        plain = predict(tuned, job.lr, job.valid, reference=0)[0]
        t_plain = time.perf_counter() - t0
        outs = {}
        t0 = time.perf_counter()
        for k in range(4):
            for flip in (False, True):
                outs[(k, flip)] = back(predict(tuned, turned(job.lr, k, flip), turned(job.valid, k, flip),
                                               reference=0)[0], k, flip)
        t_ens = time.perf_counter() - t0
        ens8 = torch.stack(list(outs.values())).mean(0)
        ens4 = torch.stack([outs[(k, False)] for k in range(4)]).mean(0)
        ens2 = torch.stack([outs[(0, False)], outs[(0, True)]]).mean(0)
        row = {"kind": kind, "stack": name, "seconds": [round(t_plain, 2), round(t_ens, 2)]}
        for label, sr in (("plain", plain), ("ens2", ens2), ("ens4", ens4), ("ens8", ens8)):
            row[label] = cpsnr(sr.numpy(), st.hr.numpy(), max_shift=3, data_range=st.data_range,
                               fit_gain=st.fit_gain).cpsnr
            row[label + "_texture"] = flat_texture_ratio(sr.numpy(), st.hr.numpy(), s)
        rows.append(row)
        print(kind, name, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind]
        print(kind, {m: round(statistics.mean(r[m] for r in rs), 3) for m in ("plain", "ens2", "ens4", "ens8")},
              "worst ens8 - plain %+.3f" % min(r["ens8"] - r["plain"] for r in rs))
    save("probe_self_ensemble", {"kinds": kinds, "rows": rows})


if __name__ == "__main__":
    main(sys.argv[1].split(","))
