"""The learned path against the classic methods, on both kinds of stack, in one run each.

- ``--bench static``: the 9 real Landsat 8 pan stacks of bench_classic (frames cut from one image,
  x3, T = 9, 133 x 133 LR px, known random kernels, shifts up to 1 LR px, noise 20 DN).
- ``--bench realdates``: 10 Sentinel-2 NDVI stacks with REAL temporal change (common.s2_stacks:
  the truth date plus its nearest usable dates within 60 days, x3, 33 x 33 LR px, known random
  kernels, shifts up to 0.5 LR px, noise 0.005, real clouds as nodata).

Frames are selected as the super-resolution job does by default (registration quality at least
``params.REGISTRATION_QUALITY``); the classic methods are also scored on every frame, and the
reference date alone upsampled bicubically ("bicubic (reference)") is the classic baseline that
needs no other date.

What a user gets by default: kernels estimated per stack (joint DIP-FKP), the model trained
self-supervised on the benchmark's own LR stacks (no HR) - from scratch, or fine-tuned from a
base model (``--init``) - then PIUNet and PIUNet + TTF (the default: fitting the whole stack,
guarded; and variants: other guards, other reference weights, the reference frame alone). Scores: cPSNR (Proba-V), and the grid-texture ratio (stride-3 spectral
energy of the output over the truth's; 1 = none added). ``--supervised`` adds the upper bound:
the same network trained with the HR truths, 2-fold (trained on half the stacks, scored on the
other half).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from common import DATA_RANGE, RESULTS, S2_DATA_RANGE, l8_stacks, s2_stacks, save
from stacksr.core.classic.baselines import ibp, mean_bicubic
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.learned.inference import predict
from stacksr.core.estimation.kernel_estimation import estimate_kernels
from stacksr.core.metrics import cpsnr, grid_texture_ratio
from stacksr.core.learned.piunet import PIUNetConfig
from stacksr.core.io.stack_ops import temporal_fill
from stacksr.core.degradation.operators import upsample_bicubic
from stacksr.core.params import REGISTRATION_QUALITY
from stacksr.core.classic.registration import register_stack
from stacksr.core.learned.model_files import load_model
from stacksr.core.learned.sampling import StackData, default_patch
from stacksr.core.learned.training import TrainConfig, bf16_supported, train_self_supervised, train_supervised
from stacksr.core.learned.ttf import test_time_finetune
from stacksr.core.learned.ttf_config import GUARDS, TTFConfig


def load_bench(name: str):
    """[(name, hr, lr, valid, true kernels)], data range."""
    if name == "static":
        return [(n, st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool), st.kernels) for n, st in l8_stacks(399)], DATA_RANGE
    return [(n, st.hr, st.lr, st.valid, st.kernels) for n, st in s2_stacks()], S2_DATA_RANGE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", choices=["static", "realdates"], required=True)
    ap.add_argument("--init", default=None, help="fine-tune from this model (e.g. the shipped base model)")
    ap.add_argument("--model", default=None, help="skip training: evaluate this model as it is")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--features", type=int, default=42)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--bank", choices=["estimated", "true"], default="estimated")
    ap.add_argument("--supervised", type=int, default=0, help="steps of the supervised upper bound (0: skip)")
    ap.add_argument("--out", default="/tmp/stacksr_learned.pt")
    ap.add_argument("--tag", default="")
    ap.add_argument("--guards", default=",".join(GUARDS), help="TTF guards to compare with the default one")
    ap.add_argument("--stack-fit", default="", help="comma-separated reference weights of TTF variants that fit "
                    "the whole stack (TTFConfig.fit='stack'), compared with the default")
    ap.add_argument("--grid-weights", default="", help="comma-separated TTF grid-band weights (TTFConfig.grid_weight) "
                    "compared with the default")
    ap.add_argument("--reference-fit", action="store_true", help="add TTF on the reference frame alone (as published)")
    args = ap.parse_args()
    scale = 3
    stacks, data_range = load_bench(args.bench)
    t0 = time.perf_counter()
    if args.bank == "true":
        bank = torch.cat([k for *_, k in stacks])
    elif os.path.exists(bank_cache := os.path.join(RESULTS, f"bank_{args.bench}.pt")):
        bank = torch.load(bank_cache, weights_only=True)  # the same estimate every run: kernels are seeded
    else:
        flow = load_fkp(default_fkp_path(scale), scale)
        bank = torch.cat([estimate_kernels(lr, v, flow, scale, "joint", seed=0).kernels for _, _, lr, v, _ in stacks])
        torch.save(bank, bank_cache)
    t_bank = time.perf_counter() - t0
    bf16 = bf16_supported(torch.device("cpu"))
    data = [StackData(lr, v, n) for n, _, lr, v, _ in stacks]
    patch = default_patch([tuple(lr.shape[-2:]) for _, _, lr, _, _ in stacks], scale)  # the Train algorithm's choice
    train_res = {"seconds": 0, "history": []}
    if args.model:
        model_path = args.model
    else:
        cfg = TrainConfig(scale=scale, frames=9, patch=patch, batch=args.batch, steps=args.steps, lr=args.lr,
                          val_every=max(args.steps // 10, 1), bf16=bf16)
        net_cfg = PIUNetConfig(scale=scale, features=args.features, blocks=args.blocks)
        train_res = train_self_supervised(data, bank, cfg, args.out, "bench", net_cfg, init=args.init)
        model_path = args.out
        print(f"self-supervised: {train_res['steps']} steps in {train_res['seconds']} s (bank {t_bank:.0f} s)", flush=True)
    net, _ = load_model(model_path, scale)
    sup_nets = {}
    if args.supervised:
        half = len(stacks) // 2
        for fold, (train_idx, test_idx) in enumerate([(range(half, len(stacks)), range(half)),
                                                      (range(half), range(half, len(stacks)))]):
            cfg = TrainConfig(scale=scale, frames=9, patch=patch, batch=args.batch, steps=args.supervised, lr=args.lr,
                              val_every=max(args.supervised // 10, 1), bf16=bf16)
            path = f"{args.out}.sup{fold}"
            train_supervised([data[i] for i in train_idx], [torch.nan_to_num(stacks[i][1]) for i in train_idx], cfg,
                             path, net.config)
            for i in test_idx:
                sup_nets[i] = path
    flow = load_fkp(default_fkp_path(scale), scale)
    ttf_variants = {"PIUNet + TTF": TTFConfig()}  # the default, then the other guards to compare
    ttf_variants.update({f"PIUNet + TTF (guard {g})": TTFConfig(guard=g) for g in args.guards.split(",")
                         if g and g != TTFConfig.guard})
    ttf_variants.update({f"PIUNet + TTF (fit stack, reference {w})": TTFConfig(fit="stack", reference_weight=float(w))
                         for w in args.stack_fit.split(",") if w})
    ttf_variants.update({f"PIUNet + TTF (grid weight {w})": TTFConfig(grid_weight=float(w))
                         for w in args.grid_weights.split(",") if w})
    if args.reference_fit:
        ttf_variants["PIUNet + TTF (fit reference, as published)"] = TTFConfig(fit="reference")
    classic = ["bicubic (reference)", "mean-bicubic", "IBP", "mean-bicubic (every frame)", "IBP (every frame)"]
    methods = [*classic, "PIUNet", *ttf_variants] + (["PIUNet supervised"] if sup_nets else [])
    scores = {m: [] for m in methods}
    texture = {m: [] for m in methods}
    kept, frames_used = [], []
    for i, (name, hr, lr_all, valid_all, _) in enumerate(stacks):
        # what the job does by default: frames whose registration quality is too low are left out
        reg = register_stack(lr_all, valid_all, 0)
        used = reg.kept(REGISTRATION_QUALITY.default)
        used[0] = True
        lr, valid, shifts = lr_all[used], valid_all[used], reg.shifts[used]
        frames_used.append(int(used.sum()))
        outs = {"bicubic (reference)": upsample_bicubic(temporal_fill(lr_all[:1], valid_all[:1]), scale)[0],
                "mean-bicubic": mean_bicubic(lr, valid, scale, shifts), "IBP": ibp(lr, valid, scale, shifts),
                "mean-bicubic (every frame)": mean_bicubic(lr_all, valid_all, scale, reg.shifts),
                "IBP (every frame)": ibp(lr_all, valid_all, scale, reg.shifts),
                "PIUNet": predict(net, lr, valid)[0]}
        for m, cfg in ttf_variants.items():
            tuned, _, res = test_time_finetune(net, flow, lr, valid, 0, cfg)
            outs[m] = predict(tuned, lr, valid)[0]
            if m == "PIUNet + TTF":
                kept.append(res.kept_iteration)
        if i in sup_nets:
            outs["PIUNet supervised"] = predict(load_model(sup_nets[i], scale)[0], lr, valid)[0]
        for m, sr in outs.items():
            scores[m].append(cpsnr(sr.numpy(), hr.numpy(), max_shift=3, data_range=data_range).cpsnr)
            texture[m].append(grid_texture_ratio(sr.numpy(), hr.numpy(), scale))
        print(name, {m: round(v[-1], 2) for m, v in scores.items()}, f"TTF kept iteration {kept[-1]}, "
              f"frames used {frames_used[-1]} of {len(lr_all)}", flush=True)
    summary = {m: statistics.mean(v) for m, v in scores.items()}
    tex = {m: statistics.mean(v) for m, v in texture.items()}
    best_classic = max(summary[m] for m in classic)
    for m in ttf_variants:
        g = [a - b for a, b in zip(scores[m], scores["PIUNet"])]
        print(f"{m}: TTF gain mean {statistics.mean(g):+.3f} dB, worst {min(g):+.3f} dB")
    print("\n| method | cPSNR (dB) | vs best classic | grid texture / truth |\n|---|---|---|---|")
    for m in methods:
        print(f"| {m} | {summary[m]:.2f} | {summary[m] - best_classic:+.2f} | {tex[m]:.2f} |")
    gains = [a - b for a, b in zip(scores["PIUNet + TTF"], scores["PIUNet"])]
    print(f"TTF gain: mean {statistics.mean(gains):+.3f} dB, worst {min(gains):+.3f} dB; kept iterations {kept}")
    save(f"learned_{args.bench}{args.tag}", {
        "args": vars(args), "train_seconds": train_res["seconds"], "bank_seconds": t_bank, "patch": patch,
        "summary": summary, "grid_texture": tex, "per_stack": scores, "per_stack_texture": texture,
        "stacks": [s[0] for s in stacks], "ttf_kept_iteration": kept, "frames_used": frames_used,
        "history": train_res["history"]})


if __name__ == "__main__":
    main()
