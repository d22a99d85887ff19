"""TTF variants on a few stacks of a learned-path benchmark, with a given model (quick probes).

    python probe_ttf.py static MODEL.pt 0,3,8 '{"default": {}, "lr3e-4": {"lr_net": 3e-4}}'

Prints, per stack, IBP, the untuned PIUNet and each variant's (cPSNR, kept iteration, seconds);
a variant is a set of keyword arguments of ``TTFConfig``.
"""
from __future__ import annotations

import json
import sys
import time

from bench_learned import load_bench
from stacksr.core.classic.baselines import ibp
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.learned.inference import predict
from stacksr.core.metrics import cpsnr
from stacksr.core.classic.registration import register_frames
from stacksr.core.learned.model_files import load_model
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.learned.ttf import test_time_finetune as finetune


def main() -> None:
    bench, model, picks, variants = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    stacks, data_range = load_bench(bench)
    net, _ = load_model(model, 3)
    flow = load_fkp(default_fkp_path(3), 3)
    for i in (int(p) for p in picks.split(",")):
        name, hr, lr, valid, _ = stacks[i]

        def score(sr) -> float:
            return round(cpsnr(sr.numpy(), hr.numpy(), max_shift=3, data_range=data_range).cpsnr, 2)

        row = {"IBP": score(ibp(lr, valid, 3, register_frames(lr, valid, 0))), "PIUNet": score(predict(net, lr, valid)[0])}
        for key, kwargs in variants.items():
            t = time.perf_counter()
            tuned, _, res = finetune(net, flow, lr, valid, 0, TTFConfig(**kwargs))
            row[key] = (score(predict(tuned, lr, valid)[0]), res.kept_iteration, round(time.perf_counter() - t, 1))
        print(name, row, flush=True)


if __name__ == "__main__":
    main()
