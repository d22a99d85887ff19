"""Training samples drawn from LR stacks: the self-supervised CR -> LR sampler (each frame degraded
with its own kernel from the bank), the supervised LR -> HR sampler, and the split of every stack
into a training and a validation area.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..degradation.operators import blur_downsample, shift_images
from .piunet import PIUNetConfig, residual_base
from ..classic.registration import register_frames
from ..io.stack_ops import standardize_stack, temporal_fill

if TYPE_CHECKING:
    from .train_config import TrainConfig


@dataclass
class StackData:
    """One LR stack in memory: frames (T, H, W) float32 and validity (T, H, W) bool."""

    frames: torch.Tensor
    valid: torch.Tensor
    name: str = ""
    weight: float = 1.0  # relative chance of a patch from this stack (a corpus weighs its places, not its stacks)


def default_patch(sizes: list[tuple[int, int]], scale: int) -> int:
    """The CR patch self-supervised training uses when none is given: the largest (up to 32)
    that leaves a validation strip in the smallest stack. ``sizes``: ``(H, W)`` of each stack."""
    return max(min(32, min(min(hw) for hw in sizes) // (2 * scale)), 2)


def area_split(stacks: list[StackData], patch: int, val_fraction: float) -> list[int]:
    """First validation row of every stack: its bottom rows (``val_fraction``, at least one
    ``patch``) validate, the rest trains, so the two areas never share a pixel."""
    rows = []
    for st in stacks:
        H, W = st.frames.shape[-2:]
        split = H - max(int(round(H * val_fraction)), patch)
        if split < patch or W < patch:
            raise ValueError(f"stack '{st.name}' ({W}x{H} px) is too small for {patch}-px training and "
                             f"validation patches; use a smaller patch size")
        rows.append(split)
    return rows


def draw_patch(stacks: list[StackData], split_rows: list[int], patch: int, generator: torch.Generator,
               train: bool) -> tuple[int, int, int]:
    """(stack index, row, column) of a random ``patch``-px window inside the training or validation area."""
    weights = [st.weight for st in stacks]
    if all(w == weights[0] for w in weights):  # equal weights keep the sampler's random stream of a single stack
        i = int(torch.randint(len(stacks), (1,), generator=generator))
    else:
        i = int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=generator))
    H, W = stacks[i].frames.shape[-2:]
    r0, r1 = (0, split_rows[i]) if train else (split_rows[i], H)
    r = int(torch.randint(r0, r1 - patch + 1, (1,), generator=generator))
    c = int(torch.randint(0, W - patch + 1, (1,), generator=generator))
    return i, r, c


class SelfSupervisedSampler:
    """Draws (CR stack, LR target, target mask) batches from LR stacks and a kernel bank."""

    def __init__(self, stacks: list[StackData], kernels: torch.Tensor, config: TrainConfig):
        self.stacks = stacks
        self.kernels = kernels.float()
        self.cfg = config
        s = config.scale
        self.lr_patch = config.patch * s
        self.split_rows = area_split(stacks, self.lr_patch, config.val_fraction)
        self.net_config: PIUNetConfig | None = None  # set by train_piunet: decides the residual base

    def sample(self, batch: int, generator: torch.Generator, train: bool = True):
        """(CR inputs, LR targets, target masks, IBP residual bases or None)."""
        P, s, T = self.lr_patch, self.cfg.scale, self.cfg.frames
        inputs, targets, masks, shifts = [], [], [], []
        for _ in range(batch):
            i, r, c = draw_patch(self.stacks, self.split_rows, P, generator, train)
            st = self.stacks[i]
            f = st.frames[:, r:r + P, c:c + P]
            v = st.valid[:, r:r + P, c:c + P]
            clear = v.float().mean(dim=(1, 2))
            order = torch.argsort(clear, descending=True, stable=True)
            order = order[clear[order] > 0.5] if bool((clear > 0.5).any()) else order[:1]
            chosen = order.repeat(math.ceil(T / len(order)))[:T]
            f, v = f[chosen], v[chosen]
            good = [j for j in range(T) if float(v[j].float().mean()) >= 0.9] or [0]
            ref = good[int(torch.randint(len(good), (1,), generator=generator))]
            if train:  # flips and 90-degree rotations, the same for every frame
                k = int(torch.randint(4, (1,), generator=generator))
                f, v = torch.rot90(f, k, (1, 2)), torch.rot90(v, k, (1, 2))
                if bool(torch.randint(2, (1,), generator=generator)):
                    f, v = f.flip(-1), v.flip(-1)
            f = temporal_fill(f, v)
            kid = torch.randint(self.kernels.shape[0], (T,), generator=generator)
            moved = f
            if self.cfg.shift_aug > 0:
                d = (torch.rand(T, 2, generator=generator) * 2 - 1) * self.cfg.shift_aug * s
                d[ref] = 0.0  # the target's grid
                moved = shift_images(f, d)
            cr = blur_downsample(moved, self.kernels[kid], s)
            target = f[ref]
            cr_n, mean, std = standardize_stack(cr, torch.ones_like(cr, dtype=torch.bool))
            if self.cfg.noise_aug > 0 and train:
                level = float(torch.rand(1, generator=generator)) * self.cfg.noise_aug
                cr_n = cr_n + level * torch.randn(cr_n.shape, generator=generator)
            inputs.append(cr_n)
            targets.append((target - mean) / std)
            masks.append(v[ref])
            if self.net_config is not None and self.net_config.residual == "ibp":
                # registered on the CR frames, as inference registers the LR frames: the applied shifts
                # alone would miss the frames' own misregistration
                shifts.append(register_frames(cr_n, torch.ones_like(cr_n, dtype=torch.bool), ref))
        x = torch.stack(inputs)
        base = residual_base(self.net_config, x, torch.ones_like(x, dtype=torch.bool), torch.stack(shifts)) \
            if shifts else None
        return x, torch.stack(targets), torch.stack(masks), base


class SupervisedSampler:
    """Draws (LR stack, HR target, mask) batches from stacks with co-registered HR rasters."""

    def __init__(self, stacks: list[StackData], hr: list[torch.Tensor], config: TrainConfig):
        if len(hr) != len(stacks):
            raise ValueError("give one HR reference per stack")
        s = config.scale
        self.stacks, self.hr, self.cfg = stacks, [h.float() for h in hr], config
        for st, h in zip(stacks, self.hr):
            H, W = st.frames.shape[-2:]
            if tuple(h.shape) != (H * s, W * s):
                raise ValueError(f"HR reference of '{st.name}' is {tuple(h.shape)}, expected {(H * s, W * s)} at x{s}")
        self.split_rows = area_split(stacks, config.patch, config.val_fraction)
        self.net_config: PIUNetConfig | None = None

    def sample(self, batch: int, generator: torch.Generator, train: bool = True):
        P, s, T = self.cfg.patch, self.cfg.scale, self.cfg.frames
        inputs, targets, masks = [], [], []
        for _ in range(batch):
            i, r, c = draw_patch(self.stacks, self.split_rows, P, generator, train)
            st = self.stacks[i]
            f, v = st.frames[:, r:r + P, c:c + P], st.valid[:, r:r + P, c:c + P]
            order = torch.argsort(v.float().mean(dim=(1, 2)), descending=True, stable=True)
            chosen = order.repeat(math.ceil(T / len(order)))[:T]
            f = temporal_fill(f[chosen], v[chosen])
            fn, mean, std = standardize_stack(f, torch.ones_like(f, dtype=torch.bool))
            h = self.hr[i][r * s:(r + P) * s, c * s:(c + P) * s]
            inputs.append(fn)
            targets.append((h - mean) / std)
            masks.append(torch.isfinite(h))
        x, y = torch.stack(inputs), torch.stack(targets)
        base = None
        if self.net_config is not None and self.net_config.residual == "ibp":
            ok = torch.ones_like(x[0], dtype=torch.bool)
            shifts = torch.stack([register_frames(f, ok, 0) for f in x])
            base = residual_base(self.net_config, x, torch.ones_like(x, dtype=torch.bool), shifts)
        return x, torch.nan_to_num(y), torch.stack(masks), base
