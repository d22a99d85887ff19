"""Self-supervised PIUNet training on the user's own LR time series (and supervised training).

Self-supervised samples: an LR patch of T frames (the clearest first, repeated if
the stack has fewer) is degraded to the coarse resolution (CR) with a kernel drawn
at random from the kernel bank for every frame, then decimated; PIUNet learns to
recover one LR frame (the reference) from the CR stack. No HR data is needed.

The loss is L1 with the brightness-bias and small-shift search of cPSNR, masked by
the target's validity; an optional Laplace negative log-likelihood trains the
uncertainty head. Train/validation are split by area (the bottom rows of every
stack validate), so validation patches never overlap training patches.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel

from . import __version__
from .baselines import temporal_fill
from .degradation import blur_downsample, check_scale, shift_images
from .distributed import init_from_env
from .errors import StackSRError
from .piunet import PIUNet, PIUNetConfig, residual_base
from .registration import register_frames
from .progress import Cancelled, Monitor, ensure_monitor
from .stack_io import atomic_output

MODEL_FORMAT = "stacksr-piunet"
MODEL_VERSION = 1
BASE_MODEL_FILE = "piunet_base_x{scale}.pt"  # shipped in models/ (see models/README.md)


@dataclass(frozen=True)
class TrainConfig:
    scale: int = 3
    frames: int = 9
    patch: int = 32  # CR input size; LR target patches are scale * patch
    batch: int = 8
    steps: int = 500
    lr: float = 3e-4
    max_shift: int = 1  # LR pixels searched by the loss
    uncertainty: bool = True  # add the Laplace NLL term
    val_fraction: float = 0.2
    val_every: int = 50
    seed: int = 0
    shift_aug: float = 1.0  # random per-frame shift of the inputs, CR pixels (test-time shifts are LR pixels)
    bf16: bool = False  # bfloat16 autocast for forward/backward
    noise_aug: float = 0.03  # max std of white noise added to the normalised CR inputs (blur removes
    # most of the LR frames' own noise, which the network must still handle at test time)


@dataclass
class StackData:
    """One LR stack in memory: frames (T, H, W) float32 and validity (T, H, W) bool."""

    frames: torch.Tensor
    valid: torch.Tensor
    name: str = ""


class ModelFileError(StackSRError):
    """A model file that is missing, not a StackSR model, or does not fit the request."""


def normalize_stack(frames: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """(frames - mean) / std over valid pixels; returns the normalised frames, mean and std."""
    vals = frames[valid]
    mean = float(vals.mean()) if vals.numel() else 0.0
    std = float(vals.std()) if vals.numel() > 1 else 1.0
    std = std if std > 1e-6 else 1.0
    return (frames - mean) / std, mean, std


def shift_search_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Per-sample L1 after removing the mean bias, minimised over shifts up to ``max_shift``.

    ``pred``, ``target``, ``mask``: ``(B, H, W)``. The target is cropped by ``max_shift``
    on each border and compared with every shifted crop of ``pred`` (as cPSNR does).
    """
    c = max_shift
    B, H, W = target.shape
    t = target[:, c:H - c, c:W - c]
    m = mask[:, c:H - c, c:W - c].float()
    n = m.sum(dim=(1, 2)).clamp(min=1)
    losses = []
    for u in range(2 * c + 1):
        for v in range(2 * c + 1):
            p = pred[:, u:u + H - 2 * c, v:v + W - 2 * c]
            diff = (t - p) * m
            bias = diff.sum(dim=(1, 2)) / n
            losses.append(((t - p - bias[:, None, None]).abs() * m).sum(dim=(1, 2)) / n)
    return torch.stack(losses, dim=1).min(dim=1).values


def laplace_nll(pred: torch.Tensor, log_scale: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean Laplace negative log-likelihood (bias-corrected) per sample."""
    m = mask.float()
    n = m.sum(dim=(1, 2)).clamp(min=1)
    bias = ((target - pred) * m).sum(dim=(1, 2)) / n
    ls = log_scale.clamp(-7, 7)
    nll = (target - pred - bias[:, None, None]).abs() * torch.exp(-ls) + ls
    return (nll * m).sum(dim=(1, 2)) / n


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
    i = int(torch.randint(len(stacks), (1,), generator=generator))
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
            cr_n, mean, std = normalize_stack(cr, torch.ones_like(cr, dtype=torch.bool))
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
            fn, mean, std = normalize_stack(f, torch.ones_like(f, dtype=torch.bool))
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


@dataclass
class TrainState:
    step: int = 0
    best_val: float = float("inf")
    history: list = field(default_factory=list)  # (step, train_loss, val_loss)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast here (CUDA, or a CPU with native bf16 instructions)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _rng_states(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "sampler": generator.get_state()}


def save_model(path: str, net: PIUNet, train_config: TrainConfig, bank_digest: str, state: TrainState,
               optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None,
               extra: dict | None = None) -> str:
    """Write a model/checkpoint atomically (plain tensors and containers: weights_only-safe)."""
    payload = {
        "format": MODEL_FORMAT, "version": MODEL_VERSION, "stacksr_version": __version__,
        "piunet": net.config.to_dict(), "train": asdict(train_config), "scale": net.config.scale,
        "kernel_bank": bank_digest, "state_dict": net.state_dict(),
        "state": {"step": state.step, "best_val": state.best_val, "history": state.history},
        "extra": extra or {},
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if generator is not None:
        payload["rng"] = _rng_states(generator)
    with atomic_output(path, ".pt") as tmp:
        torch.save(payload, tmp)
    return path


def base_model_path(scale: int) -> str | None:
    """The shipped self-supervised base model for ``scale`` (None where none is shipped): the
    default model of super-resolution and the default starting point of training."""
    from .fkp import MODELS_DIR

    path = os.path.join(MODELS_DIR, BASE_MODEL_FILE.format(scale=check_scale(scale)))
    return path if os.path.exists(path) else None


def load_model(path: str, scale: int | None = None, device: str | torch.device = "cpu") -> tuple[PIUNet, dict]:
    """Load a StackSR PIUNet file safely; refuse other formats, versions or scales."""
    if not os.path.exists(path):
        raise ModelFileError(f"model '{path}' does not exist")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is "not ours"
        raise ModelFileError(f"'{path}' is not a StackSR model ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"'{path}' is not a StackSR model")
    if payload.get("version") != MODEL_VERSION:
        raise ModelFileError(f"model '{path}' has format version {payload.get('version')}, expected {MODEL_VERSION}")
    if scale is not None and payload["scale"] != scale:
        raise ModelFileError(f"model '{path}' is for scale x{payload['scale']}, not x{scale}")
    net = PIUNet(PIUNetConfig(**payload["piunet"]))
    net.load_state_dict(payload["state_dict"])
    return net.to(device), payload


def train_self_supervised(
    stacks: list[StackData],
    kernels: torch.Tensor,
    config: TrainConfig,
    output: str,
    bank_digest: str = "",
    net_config: PIUNetConfig | None = None,
    resume: str | None = None,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
    init: str | None = None,
) -> dict:
    """Self-supervised training (CR stacks -> LR target) with a kernel bank; see :func:`train_piunet`."""
    return train_piunet(SelfSupervisedSampler(stacks, kernels, config), config, output, bank_digest, net_config,
                        resume, device, monitor, init)


def train_supervised(
    stacks: list[StackData],
    hr: list[torch.Tensor],
    config: TrainConfig,
    output: str,
    net_config: PIUNetConfig | None = None,
    resume: str | None = None,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
) -> dict:
    """Supervised training (LR stack -> HR image) when HR references exist; see :func:`train_piunet`."""
    return train_piunet(SupervisedSampler(stacks, hr, config), config, output, "supervised", net_config,
                        resume, device, monitor)


def train_piunet(
    sampler: "SelfSupervisedSampler | SupervisedSampler",
    config: TrainConfig,
    output: str,
    bank_digest: str = "",
    net_config: PIUNetConfig | None = None,
    resume: str | None = None,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
    init: str | None = None,
) -> dict:
    """Train PIUNet on batches from ``sampler``; writes ``output`` (best on validation) and
    ``output`` + '.last' (resumable). On cancel, the last checkpoint is saved and Cancelled
    is re-raised. ``init``: a model file whose architecture and weights training starts from
    (fine-tuning, e.g. the shipped base model), with a fresh optimiser and step count;
    ``resume`` instead continues a checkpoint exactly.

    Under torchrun, every process trains on its own samples with DistributedDataParallel
    (gradients averaged across processes); only rank 0 validates and writes files."""
    mon = ensure_monitor(monitor)
    check_scale(config.scale)
    dist_info, device = init_from_env(torch.device(device))
    torch.manual_seed(config.seed)  # same initial weights on every rank
    gen = torch.Generator().manual_seed(config.seed + 1000 * dist_info.rank)  # different samples per rank
    if init and not resume:
        net, _ = load_model(init, config.scale, device)
    else:
        net = PIUNet(net_config or PIUNetConfig(scale=config.scale)).to(device)
    state = TrainState()
    payload = None
    if resume:
        net_r, payload = load_model(resume, config.scale, device)
        if payload.get("kernel_bank") != bank_digest:
            raise ModelFileError(f"checkpoint '{resume}' was trained with another kernel bank")
        net = net_r  # the checkpoint's own architecture, whatever net_config says
    sampler.net_config = net.config
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    if payload is not None:
        if "optimizer" in payload:
            opt.load_state_dict(payload["optimizer"])
        st = payload["state"]
        state = TrainState(st["step"], st["best_val"], [tuple(h) for h in st["history"]])
        if "rng" in payload:
            torch.set_rng_state(payload["rng"]["torch"])
            gen.set_state(payload["rng"]["sampler"])
    model = DistributedDataParallel(net) if dist_info.world > 1 else net
    val_gen = torch.Generator().manual_seed(config.seed + 1)
    val_batch = sampler.sample(max(config.batch, 8), val_gen, train=False)
    last = output + ".last"
    t0 = time.perf_counter()

    def loss_of(batch, module: torch.nn.Module) -> torch.Tensor:
        x, y, m, base = (None if t is None else t.to(device) for t in batch)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=config.bf16):
            pred, log_scale = module(x, base=base)
        pred, log_scale = pred.float(), log_scale.float()
        loss = shift_search_l1(pred, y, m, config.max_shift)
        if config.uncertainty:
            c = config.max_shift
            crop = (slice(None), slice(c, -c or None), slice(c, -c or None))
            loss = loss + 0.1 * laplace_nll(pred[crop], log_scale[crop], y[crop], m[crop])
        return loss.mean()

    train_loss = float("nan")
    try:
        while state.step < config.steps:
            mon.check()
            net.train()
            loss = loss_of(sampler.sample(config.batch, gen, train=True), model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            train_loss = float(loss.detach())
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training diverged at step {state.step + 1} (loss {train_loss})")
            state.step += 1
            if dist_info.is_main and (state.step % config.val_every == 0 or state.step == config.steps):
                net.eval()
                with torch.no_grad():
                    val = float(loss_of(val_batch, net))
                state.history.append((state.step, train_loss, val))
                if val < state.best_val:
                    state.best_val = val
                    save_model(output, net, config, bank_digest, state)
                save_model(last, net, config, bank_digest, state, opt, gen)
            mon.progress(state.step / config.steps, f"step {state.step}/{config.steps}, loss {train_loss:.4f}")
    except Cancelled:
        if dist_info.is_main:
            save_model(last, net, config, bank_digest, state, opt, gen)
        raise
    return {"output": output, "checkpoint": last, "steps": state.step, "best_val": state.best_val,
            "history": state.history, "seconds": round(time.perf_counter() - t0, 1), "world_size": dist_info.world}
