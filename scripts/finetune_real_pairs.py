"""Fine-tune an x2 base model on real 20 m -> 10 m pairs: Sentinel-2 L2A Romania, west half only (the east half is the
x2 benchmark and its selection set), B3 and B4. LR: the 20 m band of a fully usable truth date and its nearest usable
dates within 60 days; target: the same date's 10 m band (one acquisition, real optics on both sides). Supervised
L1, from the given model; writes the best checkpoint on the pairs' held-out rows.

    PYTHONPATH=.build/pkg .venv/bin/python scripts/finetune_real_pairs.py --init models/piunet_base_x2.pt \
        --steps 1500 --output pretrain_runs/x2_pairs/model.pt
"""
from __future__ import annotations

import argparse
import os
from datetime import datetime

import numpy as np
import torch

from pretrain_corpus import ROMANIA_HOLDOUT_COLUMN_10M as C10, SCL_USABLE, corpus
from stacksr.core.convention import default_kernel_size
from stacksr.core.degradation.operators import gaussian_kernels, random_gaussian_params
from stacksr.core.learned.sampling import SelfSupervisedSampler, StackData, SupervisedSampler
from stacksr.core.learned.training import TrainConfig, train_piunet

ROMANIA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                       "real_series", "nrt_s2_romania")
WINDOW_DAYS = 60


def west_pairs(frames: int) -> tuple[list[StackData], list[torch.Tensor]]:
    s10 = np.load(os.path.join(ROMANIA, "s2_10m_T140_C4_100x100_uint16.npy"))[..., :C10]
    scl10 = np.load(os.path.join(ROMANIA, "s2_10m_SCL_T140_100x100_uint8.npy"))[..., :C10]
    s20 = np.load(os.path.join(ROMANIA, "s2_20m_T140_C4_50x50_uint16.npy"))[..., :C10 // 2]
    scl20 = np.load(os.path.join(ROMANIA, "s2_20m_SCL_T140_50x50_uint8.npy"))[..., :C10 // 2]
    with open(os.path.join(ROMANIA, "dates_10m.txt"), encoding="utf-8") as fh:
        dates = [datetime.fromisoformat(line.strip()) for line in fh if line.strip()]
    ok10, ok20 = np.isin(scl10, SCL_USABLE), np.isin(scl20, SCL_USABLE)
    clear20 = ok20.mean(axis=(1, 2))
    stacks, targets = [], []
    for t in range(len(dates)):
        if not (ok10[t].all() and ok20[t].all()):
            continue
        near = sorted((u for u in range(len(dates)) if u != t and clear20[u] >= 0.5
                       and abs((dates[u] - dates[t]).days) <= WINDOW_DAYS),
                      key=lambda u: abs((dates[u] - dates[t]).days))[:frames - 1]
        if len(near) < 2:
            continue
        members = [t] + near
        for b20, b10 in ((0, 1), (1, 2)):  # B3, B4: the 20 m product's band and the same band at 10 m
            lr = torch.from_numpy(s20[members, b20].astype(np.float32))
            valid = torch.from_numpy(ok20[members] & (s20[members, b20] > 0))
            stacks.append(StackData(lr, valid, f"ro_west_{dates[t]:%Y%m%d}_{b20}"))
            targets.append(torch.from_numpy(s10[t, b10].astype(np.float32)))
    return stacks, targets


class MixedSampler:
    """Each training batch: a ``share`` of real pairs (LR -> HR), the rest the pretraining corpus's self-supervised
    samples (CR -> LR), so the network keeps what it learned of many places and sensors; validation on the pairs'
    held-out rows only (the quality that decides)."""

    def __init__(self, pairs: SupervisedSampler, corpus_sampler: SelfSupervisedSampler, share: float):
        self.pairs, self.corpus, self.share = pairs, corpus_sampler, share
        self._net_config = None

    @property
    def net_config(self):
        return self._net_config

    @net_config.setter
    def net_config(self, value):
        self._net_config = self.pairs.net_config = self.corpus.net_config = value

    def sample(self, batch: int, generator: torch.Generator, train: bool = True):
        if not train:
            return self.pairs.sample(batch, generator, train=False)
        n = max(1, round(batch * self.share))
        a, b = self.pairs.sample(n, generator), self.corpus.sample(batch - n, generator)
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]]), torch.cat([a[2], b[2]]), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--patch", type=int, default=12, help="LR px")
    ap.add_argument("--frames", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", default=None, metavar="MODEL",
                    help="train nothing: write --output (trained before) here as the shipped x2 base model, documented")
    ap.add_argument("--chosen-by", default="", help="with --ship: why this model (recorded in the file)")
    ap.add_argument("--corpus-share", type=float, default=0.0,
                    help="share of each batch drawn from the self-supervised pretraining corpus (0: pairs only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.ship:
        payload = torch.load(args.output, map_location="cpu", weights_only=True)
        for key in ("optimizer", "rng"):
            payload.pop(key, None)
        base = torch.load(args.init, map_location="cpu", weights_only=True).get("extra", {})
        payload["extra"] = {
            **base, "self_supervised": False, "started_from": base,
            "fine_tuning": f"scripts/finetune_real_pairs.py --init {args.init} --steps {args.steps} --frames "
                           f"{args.frames} --patch {args.patch} --corpus-share {args.corpus_share} --lr {args.lr}: "
                           "supervised L1 on 74 real Sentinel-2 L2A 20 m -> 10 m pairs (B3, B4) of Romania's west "
                           "half (the east half is the x2 benchmark and its selection set), each batch shared with "
                           "the self-supervised pretraining corpus; the best step on the pairs' held-out rows",
            "chosen_by": args.chosen_by,
        }
        payload["extra"]["started_from"] = {k: v for k, v in base.items() if k != "curve"}  # the curve: once
        torch.save(payload, args.ship)
        print(f"wrote {args.ship}", flush=True)
        return
    stacks, targets = west_pairs(args.frames)
    print(f"{len(stacks)} real pairs (west half)", flush=True)
    cfg = TrainConfig(scale=2, frames=args.frames, patch=args.patch, batch=16, steps=args.steps, lr=args.lr,
                      val_fraction=0.2, val_every=max(args.steps // 5, 1), val_samples=64, seed=0)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    sampler = SupervisedSampler(stacks, targets, cfg)
    if args.corpus_share > 0:
        g = torch.Generator().manual_seed(0)
        bank = gaussian_kernels(*random_gaussian_params(512, 2, g), default_kernel_size(2), 2)
        sampler = MixedSampler(sampler, SelfSupervisedSampler(corpus(args.frames, args.patch * 2, 0.2)[0], bank, cfg),
                               1 - args.corpus_share)
    res = train_piunet(sampler, cfg, args.output, "real-pairs-romania-west", init=args.init)
    print({k: res[k] for k in ("steps", "seconds")}, [tuple(round(v, 4) for v in h) for h in res["history"]], flush=True)


if __name__ == "__main__":
    main()
