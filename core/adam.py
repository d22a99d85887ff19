"""Adam for the per-stack optimisations (test-time finetuning, kernel estimation).

The first ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` (about 1 s on this project's
2-core machine), which was most of what ``auto``'s validation of the learned path cost on a small stack and a
fixed second on every CLI run that finetunes. This is the same update as ``torch.optim.Adam`` with its defaults
(no weight decay, no AMSGrad; the single-tensor path torch takes on the CPU), step for step to the bit
(``tests/test_adam.py``). Training keeps ``torch.optim.Adam``: it runs for minutes to hours and checkpoints
the optimizer's state in torch's format.
"""
from __future__ import annotations

from typing import Iterable

import torch


class Adam:
    """``Adam(params, lr)`` or ``Adam([{"params": [...], "lr": ...}, ...])``, with ``zero_grad()`` and
    ``step()`` as in torch. Parameters without a gradient are skipped (their moments do not advance)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.groups = [{"params": list(g["params"]), "lr": g.get("lr", lr)} for g in groups]
        self.betas, self.eps = betas, eps
        self.state: dict[torch.Tensor, tuple[int, torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for g in self.groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                step, m, v = self.state.get(p) or (0, torch.zeros_like(p), torch.zeros_like(p))
                step += 1
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v.sqrt() / (1 - beta2 ** step) ** 0.5).add_(self.eps)
                p.addcdiv_(m, denom, value=-(g["lr"] / (1 - beta1 ** step)))
                self.state[p] = (step, m, v)
