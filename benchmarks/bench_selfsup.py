"""Self-supervised PIUNet vs classic baselines on held-out real Landsat 8 pan areas (x3, T=9).

The 1254x1207 pan band is cut into 9 tiles of 399x399 HR px (133x133 LR). PIUNet trains
self-supervised (CR -> LR, no HR) on the LR stacks of the first 6 tiles and is scored on
the 3 tiles of the bottom row, which it never saw, against registered mean-bicubic and
IBP in the same run. The kernel bank is either the true kernels of the training stacks
(oracle) or kernels estimated from them with joint DIP-FKP (what a user gets).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import DATA_RANGE, l8_stacks, save
from stacksr.core.classic.baselines import ibp, mean_bicubic
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.learned.inference import predict
from stacksr.core.estimation.kernel_estimation import estimate_kernels
from stacksr.core.metrics import cpsnr
from stacksr.core.learned.piunet import PIUNetConfig
from stacksr.core.classic.registration import register_frames
from stacksr.core.learned.model_files import load_model
from stacksr.core.learned.sampling import StackData
from stacksr.core.learned.training import TrainConfig, bf16_supported, train_self_supervised
from stacksr.core.learned.ttf import test_time_finetune
from stacksr.core.learned.ttf_config import TTFConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", choices=["true", "estimated"], default="estimated")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=24)
    ap.add_argument("--features", type=int, default=42)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--residual", choices=["bilinear", "ibp"], default="bilinear",
                    help="global residual: the published bilinear mean, or IBP (the network refines IBP)")
    ap.add_argument("--out", default="/tmp/stacksr_selfsup.pt")
    ap.add_argument("--ttf-iterations", type=int, default=50)
    ap.add_argument("--fp32", action="store_true", help="train without bf16 autocast (accuracy check)")
    ap.add_argument("--model", default=None, help="skip training: evaluate this model")
    args = ap.parse_args()
    stacks = l8_stacks(399)
    train, test = stacks[:6], stacks[6:]
    t0 = time.perf_counter()
    if args.model:
        bank = torch.empty(0)
    elif args.bank == "true":
        bank = torch.cat([st.kernels for _, st in train])
    else:
        flow = load_fkp(default_fkp_path(3), 3)
        bank = torch.cat([estimate_kernels(st.lr, torch.ones_like(st.lr, dtype=torch.bool), flow, 3, "joint", seed=i).kernels
                          for i, (_, st) in enumerate(train)])
    t_bank = time.perf_counter() - t0
    data = [StackData(st.lr, torch.ones_like(st.lr, dtype=torch.bool), name) for name, st in train]
    cfg = TrainConfig(scale=3, frames=9, patch=args.patch, batch=args.batch, steps=args.steps, lr=args.lr,
                      val_fraction=0.1, val_every=max(args.steps // 10, 1),
                      bf16=bf16_supported(torch.device("cpu")) and not args.fp32)
    net_cfg = PIUNetConfig(scale=3, features=args.features, blocks=args.blocks, residual=args.residual)
    if args.model:
        res = {"seconds": None, "history": []}
    else:
        res = train_self_supervised(data, bank, cfg, args.out, "bench", net_cfg)
        print(f"trained {res['steps']} steps in {res['seconds']} s (bank {t_bank:.0f} s); val {res['history'][-3:]}", flush=True)
    net, _ = load_model(args.model or args.out, 3)
    scores = {"mean-bicubic (registered)": [], "IBP (registered, default PSF)": [],
              "IBP, 80 iterations": [], "PIUNet self-supervised": [], "PIUNet self-supervised + TTF": []}
    flow = load_fkp(default_fkp_path(3), 3)
    for name, st in test:
        valid = torch.ones_like(st.lr, dtype=torch.bool)
        shifts = register_frames(st.lr, valid, 0)
        outs = {"mean-bicubic (registered)": mean_bicubic(st.lr, valid, 3, shifts),
                "IBP (registered, default PSF)": ibp(st.lr, valid, 3, shifts),
                "IBP, 80 iterations": ibp(st.lr, valid, 3, shifts, iterations=80),
                "PIUNet self-supervised": predict(net, st.lr, valid)[0]}
        t = time.perf_counter()
        tuned, _, _ = test_time_finetune(net, flow, st.lr, valid, 0, TTFConfig(iterations=args.ttf_iterations))
        outs["PIUNet self-supervised + TTF"] = predict(tuned, st.lr, valid)[0]
        print(f"TTF {time.perf_counter() - t:.1f} s", flush=True)
        for k, v in outs.items():
            scores[k].append(cpsnr(v.numpy(), st.hr.numpy(), max_shift=3, data_range=DATA_RANGE).cpsnr)
        print(name, {k: round(v[-1], 2) for k, v in scores.items()}, flush=True)
    summary = {k: statistics.mean(v) for k, v in scores.items()}
    print("\n| method | cPSNR on held-out tiles (dB) |\n|---|---|")
    for k, v in summary.items():
        print(f"| {k} | {v:.2f} |")
    save(f"selfsup_{args.bank}_{args.steps}" + ("_ibpres" if args.residual == "ibp" else "") + ("_fp32" if args.fp32 else "") + ("_eval" if args.model else ""), {"args": vars(args), "train_seconds": res["seconds"], "bank_seconds": t_bank,
                                  "summary": summary, "per_tile": scores, "history": res["history"]})


if __name__ == "__main__":
    main()
