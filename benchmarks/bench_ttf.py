"""TTF speed and gain: plain full-network TTF vs the shipped TTF, same run.

Plain reference: every iteration runs the whole PIUNet forward and backward on the whole
9 x 128 x 128 stack and updates all weights and z_k. Shipped: fused features cached once,
only the tail finetuned, on the most textured 64 x 64 window (core/ttf.py).
Speed: per-iteration time of both, published PIUNet configuration (42/16), 50 iterations
extrapolated for the plain one from 3 timed iterations. Gain: both TTFs (50 iterations) on
the model of the self-supervised benchmark (--model), 128 x 128 crops of the 3 held-out tiles.
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import torch

from common import DATA_RANGE, l8_stacks, save
from stacksr.core.io.stack_ops import temporal_fill
from stacksr.core.degradation.operators import blur_downsample
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp, project_to_sphere
from stacksr.core.learned.inference import predict
from stacksr.core.metrics import cpsnr
from stacksr.core.learned.piunet import PIUNet, PIUNetConfig
from stacksr.core.learned.losses import shift_search_l1
from stacksr.core.learned.model_files import load_model
from stacksr.core.io.stack_ops import standardize_stack
from stacksr.core.learned.ttf import test_time_finetune
from stacksr.core.learned.ttf_config import TTFConfig


def plain_ttf(net, flow, frames, valid, iterations, lr_net=1e-4, lr_kernel=2e-2):
    """The straightforward TTF: whole network, whole stack, every iteration."""
    net = copy.deepcopy(net).train()
    xn, _, _ = standardize_stack(temporal_fill(frames, valid), valid)
    z = project_to_sphere(torch.randn(1, flow.dim, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    opt = torch.optim.Adam([{"params": net.parameters(), "lr": lr_net}, {"params": [z], "lr": lr_kernel}])
    border = math.ceil((flow.config.size // 2) / 3)
    mask = torch.zeros_like(valid[:1])
    mask[:, border:-border, border:-border] = True
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        sr, _ = net(xn[None])
        loss = shift_search_l1(blur_downsample(sr, flow.kernels(z)[0], 3), xn[:1], mask & valid[:1], 1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.copy_(project_to_sphere(z))
        times.append(time.perf_counter() - t)
    return net.eval(), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/ss3.pt")
    args = ap.parse_args()
    flow = load_fkp(default_fkp_path(3), 3)
    for p in flow.parameters():
        p.requires_grad_(False)
    stacks = [(n, st) for n, st in l8_stacks(399)[6:]]
    frames = stacks[0][1].lr[:, :128, :128]
    valid = torch.ones_like(frames, dtype=torch.bool)
    torch.manual_seed(0)
    published = PIUNet(PIUNetConfig(scale=3))
    _, plain_times = plain_ttf(published, flow, frames, valid, 3)
    t = time.perf_counter()
    test_time_finetune(published, flow, frames, valid, 0, TTFConfig(iterations=50))
    shipped_50 = time.perf_counter() - t
    plain_50 = 50 * min(plain_times)
    print(f"published config, 9x128x128: plain {min(plain_times):.2f} s/it ({plain_50:.0f} s for 50), "
          f"shipped {shipped_50:.2f} s for 50 -> {plain_50 / shipped_50:.0f}x", flush=True)
    net, _ = load_model(args.model, 3)
    gains = {"plain": [], "shipped": []}
    for name, st in stacks:
        f, v = st.lr[:, :128, :128], torch.ones(st.lr.shape[0], 128, 128, dtype=torch.bool)
        hr = st.hr[:384, :384].numpy()
        base = cpsnr(predict(net, f, v)[0].numpy(), hr, max_shift=3, data_range=DATA_RANGE).cpsnr
        tuned_plain, _ = plain_ttf(net, flow, f, v, 50)
        tuned, _, _ = test_time_finetune(net, flow, f, v, 0, TTFConfig(iterations=50))
        gains["plain"].append(cpsnr(predict(tuned_plain, f, v)[0].numpy(), hr, max_shift=3, data_range=DATA_RANGE).cpsnr - base)
        gains["shipped"].append(cpsnr(predict(tuned, f, v)[0].numpy(), hr, max_shift=3, data_range=DATA_RANGE).cpsnr - base)
        print(name, {k: round(v[-1], 3) for k, v in gains.items()}, flush=True)
    summary = {"plain_s_per_iteration": min(plain_times), "plain_50_s": plain_50, "shipped_50_s": shipped_50,
               "speedup": plain_50 / shipped_50, "gain_db": {k: sum(v) / len(v) for k, v in gains.items()}}
    print(summary)
    save("ttf", summary)


if __name__ == "__main__":
    main()
