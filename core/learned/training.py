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

import torch
from torch.nn.parallel import DistributedDataParallel

from ..convention import check_scale
from ..distributed import init_from_env
from .losses import laplace_nll, shift_search_l1
from .model_files import ModelFileError, load_model, save_model
from .piunet import PIUNet, PIUNetConfig
from ..progress import Cancelled, Monitor, ensure_monitor
from .sampling import SelfSupervisedSampler, StackData, SupervisedSampler
from .train_config import TrainConfig, TrainState


def progress_line(state: TrainState, steps: int, train_loss: float, seconds: float, done: int) -> str:
    """'step 120/500, loss 0.41, validation 0.38, ETA 2 min 5 s': what a user watching training needs."""
    line = f"step {state.step}/{steps}, loss {train_loss:.4f}"
    if state.history:
        line += f", validation {state.history[-1][2]:.4f}"
    if done > 0:
        eta = round(seconds / done * (steps - state.step))
        line += f", ETA {eta // 60} min {eta % 60} s" if eta >= 60 else f", ETA {eta} s"
    return line


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast is fast here (CUDA, or a CPU with native bf16 instructions)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
    extra: dict | None = None,
) -> dict:
    """Self-supervised training (CR stacks -> LR target) with a kernel bank; see :func:`train_piunet`."""
    return train_piunet(SelfSupervisedSampler(stacks, kernels, config), config, output, bank_digest, net_config,
                        resume, device, monitor, init, extra)


def train_supervised(
    stacks: list[StackData],
    hr: list[torch.Tensor],
    config: TrainConfig,
    output: str,
    net_config: PIUNetConfig | None = None,
    resume: str | None = None,
    device: str | torch.device = "cpu",
    monitor: Monitor | None = None,
    extra: dict | None = None,
) -> dict:
    """Supervised training (LR stack -> HR image) when HR references exist; see :func:`train_piunet`."""
    return train_piunet(SupervisedSampler(stacks, hr, config), config, output, "supervised", net_config,
                        resume, device, monitor, extra=extra)


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
    extra: dict | None = None,
) -> dict:
    """Train PIUNet on batches from ``sampler``; writes ``output`` (best on validation) and
    ``output`` + '.last' (resumable). On cancel, the last checkpoint is saved and Cancelled
    is re-raised. ``init``: a model file whose architecture and weights training starts from
    (fine-tuning, e.g. the shipped base model), with a fresh optimiser and step count;
    ``resume`` instead continues a checkpoint exactly. ``extra``: kept in every file written (the job's
    settings).

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
            for group in opt.param_groups:  # the config's rate: a resumed run may continue at a lowered one
                group["lr"] = config.lr
        st = payload["state"]
        state = TrainState(st["step"], st["best_val"], [tuple(h) for h in st["history"]],
                           [tuple(c) for c in st.get("curve", [])])  # files written before the curve was kept lack it
        if "rng" in payload:
            torch.set_rng_state(payload["rng"]["torch"])
            gen.set_state(payload["rng"]["sampler"])
    model = DistributedDataParallel(net) if dist_info.world > 1 else net
    val_gen = torch.Generator().manual_seed(config.seed + 1)
    n_val = config.val_samples or max(config.batch, 8)
    val_batches = [sampler.sample(min(config.batch, n_val - k), val_gen, train=False)
                   for k in range(0, n_val, config.batch)] if config.val_samples else \
        [sampler.sample(n_val, val_gen, train=False)]
    last = output + ".last"
    t0 = time.perf_counter()
    first_step = state.step  # steps done before this run (resume): the ETA counts this run's pace only
    curve_every = max(config.steps // 200, 1)

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

    def validate() -> float:
        net.eval()
        with torch.no_grad():
            return sum(float(loss_of(b, net)) * b[0].shape[0] for b in val_batches) / n_val

    train_loss = float("nan")
    start_weights = None
    if init and not resume and dist_info.is_main:
        # the starting model competes: where no step beats it on the held-out area, the output is the model it started
        # from (BENCHMARKS.md, *fine-tuning on one stack*). Its weights are written at the end, not now: a run cancelled
        # before any step leaves no file
        start_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        state.best_val = validate()
        state.history.append((0, train_loss, state.best_val))
    elif resume and not os.path.exists(output):
        state.best_val = float("inf")  # the starting model's weights are not in the checkpoint: the next step is written
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
            if state.step % curve_every == 0:  # kept in the checkpoint: a resumed run's report shows all of it
                state.curve.append((state.step, train_loss))
            if dist_info.is_main and (state.step % config.val_every == 0 or state.step == config.steps):
                val = validate()
                state.history.append((state.step, train_loss, val))
                if val < state.best_val:
                    state.best_val = val
                    save_model(output, net, config, bank_digest, state, extra=extra)
                save_model(last, net, config, bank_digest, state, opt, gen, extra)
            mon.progress(state.step / config.steps, progress_line(state, config.steps, train_loss,
                                                                  time.perf_counter() - t0, state.step - first_step))
    except Cancelled:
        if dist_info.is_main and state.step > first_step:  # a checkpoint of no step would only replace an older one
            save_model(last, net, config, bank_digest, state, opt, gen, extra)
        raise
    best_step = next((h[0] for h in reversed(state.history) if h[2] == state.best_val), None)  # the file's step
    if start_weights is not None and best_step == 0:
        net.load_state_dict(start_weights)
        save_model(output, net, config, bank_digest, state, extra=extra)
    return {"output": output, "checkpoint": last, "steps": state.step, "best_val": state.best_val, "best_step": best_step,
            "history": state.history, "curve": state.curve, "seconds": round(time.perf_counter() - t0, 1),
            "world_size": dist_info.world}
