"""Supervised PIUNet (the paper's upper-bound column) on the benchmark of bench_selfsup.py:
trained on the LR stacks and HR of the first 6 tiles, scored on the 3 held-out tiles against IBP
in the same run. Tells whether the network, given HR targets, can beat IBP at all here.

Usage: python bench_supervised.py [--residual bilinear|ibp] [--steps N]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from common import DATA_RANGE, l8_stacks, save
from stacksr.core.classic.baselines import ibp
from stacksr.core.learned.inference import predict
from stacksr.core.metrics import cpsnr
from stacksr.core.learned.piunet import PIUNetConfig
from stacksr.core.classic.registration import register_frames
from stacksr.core.learned.model_files import load_model
from stacksr.core.learned.sampling import StackData
from stacksr.core.learned.training import TrainConfig, bf16_supported, train_supervised


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residual", choices=["bilinear", "ibp"], default="bilinear")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--out", default="/tmp/stacksr_supervised.pt")
    args = ap.parse_args()
    stacks = l8_stacks(399)
    train, test = stacks[:6], stacks[6:]
    data = [StackData(st.lr, torch.ones_like(st.lr, dtype=torch.bool), name) for name, st in train]
    cfg = TrainConfig(scale=3, frames=9, patch=16, batch=16, steps=args.steps, lr=1e-3, val_fraction=0.1,
                      val_every=max(args.steps // 10, 1), bf16=bf16_supported(torch.device("cpu")))
    res = train_supervised(data, [st.hr for _, st in train], cfg, args.out,
                           PIUNetConfig(scale=3, features=32, blocks=6, residual=args.residual))
    print(f"trained {res['steps']} steps in {res['seconds']} s; val {res['history'][-3:]}", flush=True)
    net, _ = load_model(args.out, 3)
    scores: dict[str, list[float]] = {"IBP": [], "PIUNet supervised": []}
    for name, st in test:
        valid = torch.ones_like(st.lr, dtype=torch.bool)
        outs = {"IBP": ibp(st.lr, valid, 3, register_frames(st.lr, valid, 0)),
                "PIUNet supervised": predict(net, st.lr, valid)[0]}
        for k, v in outs.items():
            scores[k].append(cpsnr(v.numpy(), st.hr.numpy(), max_shift=3, data_range=DATA_RANGE).cpsnr)
        print(name, {k: round(v[-1], 2) for k, v in scores.items()}, flush=True)
    summary = {k: statistics.mean(v) for k, v in scores.items()}
    print(summary)
    save(f"supervised_{args.residual}_{args.steps}", {"args": vars(args), "train_seconds": res["seconds"],
                                                      "summary": summary, "per_tile": scores, "history": res["history"]})


if __name__ == "__main__":
    main()
