"""The per-stack Adam (core/adam.py) takes the steps torch.optim.Adam takes, to the bit, and does not import
torch._dynamo."""
from __future__ import annotations

import subprocess
import sys

import torch

from stacksr.core.adam import Adam


def _run(opt_class, steps=25):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 5, generator=g).requires_grad_(True)
    b = torch.randn(7, generator=g).requires_grad_(True)
    idle = torch.randn(3, generator=g).requires_grad_(True)  # never gets a gradient
    target = torch.randn(4, 5, generator=g)
    opt = opt_class([{"params": [a, idle], "lr": 1e-2}, {"params": [b], "lr": 3e-3}])
    for _ in range(steps):
        loss = (a - target).abs().sum() + (b ** 3).sin().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return a.detach(), b.detach(), idle.detach()


def test_steps_equal_torch_adam_bit_for_bit_with_parameter_groups():
    ours, torchs = _run(Adam), _run(torch.optim.Adam)
    for x, y in zip(ours, torchs):
        assert torch.equal(x, y)


def test_single_group_with_a_default_rate_moves_toward_the_minimum():
    x = torch.tensor([5.0], requires_grad=True)
    opt = Adam([x], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        (x ** 2).sum().backward()
        opt.step()
    assert abs(float(x)) < 0.1


def test_building_and_stepping_it_does_not_import_torch_dynamo():
    code = ("import sys, torch; from stacksr.core.adam import Adam; p = torch.zeros(2, requires_grad=True); "
            "o = Adam([p]); p.sum().backward(); o.step(); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
