"""PIUNet model files: the network configuration, weights, training settings, kernel-bank digest and
scale, written atomically and read back safely (``torch.load(weights_only=True)``, format, version
and scale checked), and the shipped base model.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from .. import __version__
from ..convention import check_scale
from ..errors import StackSRError
from ..io.atomic_files import atomic_output
from .piunet import PIUNet, PIUNetConfig
from ..io.safe_files import check_header, read_safely

if TYPE_CHECKING:
    from .train_config import TrainConfig, TrainState


MODEL_FORMAT = "stacksr-piunet"


MODEL_VERSION = 1


BASE_MODEL_FILE = "piunet_base_x{scale}.pt"  # shipped in models/ (see models/README.md)


class ModelFileError(StackSRError):
    """A model file that is missing, not a StackSR model, or does not fit the request."""


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
        "state": {"step": state.step, "best_val": state.best_val, "history": state.history,
                  "curve": state.curve},
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
    from ..degradation.fkp import MODELS_DIR

    path = os.path.join(MODELS_DIR, BASE_MODEL_FILE.format(scale=check_scale(scale)))
    return path if os.path.exists(path) else None


# In a model file's "extra", measured on stacks with a truth that were not its benchmark (benchmarks/model_bias.py
# writes them): how much validation one scale down understates this model (with TTF) against IBP, in dB (a model
# fine-tuned on a sensor's real pairs learned a degradation the Gaussian-degraded coarse stack does not show, so one
# scale down rates it lower than it is: ``auto`` lowers its margin by this much, method_choice.margins), and the
# blend's share of this model's output that scored best (a stronger model earns more of the blend).
ONE_SCALE_DOWN_BIAS = "one_scale_down_bias_db"
BLEND_SHARE = "blend_learned_share"


@dataclass(frozen=True)
class Calibration:
    """What a model file states about judging and blending it; a model trained by the user states nothing (the
    defaults: no bias, the blend's default share)."""

    one_scale_down_bias_db: float = 0.0
    blend_learned_share: float | None = None  # None: method_choice.BLEND_LEARNED_SHARE


def calibration(payload: dict) -> Calibration:
    """The :class:`Calibration` a model file's payload states; :class:`ModelFileError` for a value that is not a
    finite number (a share outside [0, 1])."""
    extra = payload.get("extra") or {}

    def measured(key, low=-math.inf, high=math.inf):
        entry = extra.get(key)
        if not isinstance(entry, dict) or "value" not in entry:
            return None
        try:
            value = float(entry["value"])
        except (TypeError, ValueError):
            value = math.nan
        if not low <= value <= high:
            raise ModelFileError(f"the model file's {key} is {entry['value']!r}, not a number from {low:g} to {high:g}")
        return value

    bias = measured(ONE_SCALE_DOWN_BIAS, -100.0, 100.0)
    return Calibration(0.0 if bias is None else bias, measured(BLEND_SHARE, 0.0, 1.0))


def load_model(path: str, scale: int | None = None, device: str | torch.device = "cpu") -> tuple[PIUNet, dict]:
    """Load a StackSR PIUNet file safely; refuse other formats, versions or scales."""
    payload = read_safely(path, "model", ModelFileError, lambda p: torch.load(p, map_location=device, weights_only=True))
    check_header(path, "model", ModelFileError, payload, MODEL_FORMAT, MODEL_VERSION, scale)
    net = PIUNet(PIUNetConfig(**payload["piunet"]))
    net.load_state_dict(payload["state_dict"])
    return net.to(device), payload
