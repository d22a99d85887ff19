"""Flow-based Kernel Prior (FKP): a RealNVP-style normalizing flow over K x K blur kernels.

The flow maps a kernel (after a logit transform of its values) to a standard
normal latent ``z`` of the same dimension and back. Kernel estimation (DIP-FKP)
and test-time finetuning optimise ``z`` instead of the kernel pixels, so every
candidate stays a plausible, centred, normalised kernel.

Trained by :func:`train_fkp` on anisotropic Gaussian kernels drawn from
:func:`degradation.random_gaussian_params` (centred per the alignment convention).
Weights are stored as a plain state dict plus a JSON-able config and loaded with
``torch.load(weights_only=True)``, so a crafted file cannot run code.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..convention import check_scale, default_kernel_size
from .operators import gaussian_kernels, random_gaussian_params
from ..errors import StackSRError
from ..io.atomic_files import atomic_output
from ..params import FKP_ITERATIONS, SEED
from ..progress import Monitor, ensure_monitor
from ..io.safe_files import check_header, read_safely

FORMAT = "stacksr-fkp"
FORMAT_VERSION = 1
LOGIT_ALPHA = 1e-4
MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")


@dataclass(frozen=True)
class FKPConfig:
    scale: int
    size: int
    hidden: int = 128
    couplings: int = 8
    train_noise: float = 0.05  # std of Gaussian noise added in logit space while training


def kernels_to_logits(k: torch.Tensor) -> torch.Tensor:
    """(N, K, K) normalised kernels -> (N, K*K) logit features."""
    p = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * k.reshape(k.shape[0], -1).clamp(0, 1)
    return torch.log(p) - torch.log1p(-p)


def logits_to_kernels(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, K*K) logit features -> (N, K, K) non-negative kernels summing to one."""
    k = ((torch.sigmoid(x) - LOGIT_ALPHA) / (1 - 2 * LOGIT_ALPHA)).clamp(min=0)
    k = k / k.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    return k.reshape(-1, size, size)


class _ActNorm(nn.Module):
    """Per-dimension affine normalisation, initialised from the first batch."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x):
        if not bool(self.initialized):
            with torch.no_grad():
                self.bias.copy_(-x.mean(0))
                self.log_scale.copy_(-torch.log(x.std(0).clamp(min=1e-3)))
                self.initialized.fill_(True)
        return (x + self.bias) * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(-self.log_scale) - self.bias


class _Coupling(nn.Module):
    """Affine coupling: dims outside ``mask`` are scaled and shifted given those inside."""

    def __init__(self, dim: int, hidden: int, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, xm):
        s, t = self.net(xm).chunk(2, dim=-1)
        free = 1 - self.mask
        return torch.tanh(s) * free, t * free

    def forward(self, x):
        xm = x * self.mask
        s, t = self._st(xm)
        return xm + (1 - self.mask) * (x * torch.exp(s) + t), s.sum(-1)

    def inverse(self, y):
        ym = y * self.mask
        s, t = self._st(ym)
        return ym + (1 - self.mask) * ((y - t) * torch.exp(-s))


def _masks(size: int, n: int) -> list[torch.Tensor]:
    r, c = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    patterns = [(r + c) % 2 == 0, c < size // 2, r < size // 2, (r // 2 + c // 2) % 2 == 0]
    out = []
    for i in range(n):
        p = patterns[(i // 2) % len(patterns)]
        out.append((p if i % 2 == 0 else ~p).reshape(-1))
    return out


class KernelFlow(nn.Module):
    """The FKP normalizing flow: ``forward`` maps logits to latents, ``inverse`` back."""

    def __init__(self, config: FKPConfig):
        super().__init__()
        self.config = config
        dim = config.size ** 2
        self.dim = dim
        layers = []
        for mask in _masks(config.size, config.couplings):
            layers += [_ActNorm(dim), _Coupling(dim, config.hidden, mask)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, logdet = self(x)
        return -0.5 * (z ** 2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi) + logdet

    def kernels(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, K*K)`` -> kernels ``(N, K, K)``; differentiable in ``z``."""
        return logits_to_kernels(self.inverse(z), self.config.size)


def project_to_sphere(z: torch.Tensor) -> torch.Tensor:
    """Spherical projection onto radius sqrt(dim), where standard-normal latents concentrate."""
    return z * (math.sqrt(z.shape[-1]) / z.norm(dim=-1, keepdim=True).clamp(min=1e-8))


def sample_training_kernels(n: int, scale: int, size: int, generator: torch.Generator) -> torch.Tensor:
    s1, s2, th = random_gaussian_params(n, scale, generator)
    return gaussian_kernels(s1, s2, th, size, scale)


def train_fkp(
    scale: int,
    iterations: int | None = None,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    config: FKPConfig | None = None,
    monitor: Monitor | None = None,
) -> tuple[KernelFlow, dict]:
    """Maximum-likelihood training of the flow on random anisotropic Gaussian kernels."""
    mon = ensure_monitor(monitor)
    scale = check_scale(scale)
    iterations, seed = FKP_ITERATIONS.check(iterations), SEED.check(seed)
    cfg = config or FKPConfig(scale=scale, size=default_kernel_size(scale))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    flow = KernelFlow(cfg)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    t0 = time.perf_counter()
    nll = float("nan")
    for it in range(iterations):
        mon.check()
        x = kernels_to_logits(sample_training_kernels(batch, scale, cfg.size, g))
        x = x + cfg.train_noise * torch.randn(x.shape, generator=g)
        loss = -flow.log_prob(x).mean() / flow.dim
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        opt.step()
        sched.step()
        nll = float(loss.detach())
        if it % 50 == 0 or it == iterations - 1:
            mon.progress((it + 1) / iterations, f"FKP x{scale}: iteration {it + 1}, NLL/dim {nll:.3f}")
    info = {"iterations": iterations, "batch": batch, "lr": lr, "seed": seed, "final_nll_per_dim": nll,
            "seconds": round(time.perf_counter() - t0, 1), "torch": str(torch.__version__)}
    return flow.eval(), info


def save_fkp(flow: KernelFlow, path: str, training: dict | None = None) -> None:
    """Write the prior atomically; float weights are stored as float16 to keep files small
    (loading casts them back to float32)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in flow.state_dict().items()}
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "config": asdict(flow.config),
               "training": training or {}, "state_dict": state}
    with atomic_output(path, ".pt") as tmp:
        torch.save(payload, tmp)


class FKPError(StackSRError):
    """A kernel-prior file that is missing, not an FKP prior, or of the wrong scale/size."""


def load_fkp(path: str, scale: int | None = None, size: int | None = None, device: str | torch.device = "cpu") -> KernelFlow:
    """Load an FKP prior safely (weights_only) and check it fits ``scale``/``size``."""
    payload = read_safely(path, "kernel prior", FKPError, lambda p: torch.load(p, map_location=device, weights_only=True))
    config = payload.get("config") if isinstance(payload, dict) else None
    header = {**payload, **(config if isinstance(config, dict) else {})} if isinstance(payload, dict) else payload
    check_header(path, "kernel prior", FKPError, header, FORMAT, FORMAT_VERSION, scale, size)
    cfg = FKPConfig(**payload["config"])
    flow = KernelFlow(cfg)
    flow.load_state_dict(payload["state_dict"])
    return flow.to(device).eval()


def default_fkp_path(scale: int) -> str:
    return os.path.join(MODELS_DIR, f"fkp_x{check_scale(scale)}.pt")
