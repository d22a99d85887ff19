"""Training's settings and its resumable state: what the sampler, the model files and the trainer share (in a
module of their own, so none of them imports another in a circle)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..params import TRAIN_LR_SCRATCH


@dataclass(frozen=True)
class TrainConfig:
    scale: int = 3
    frames: int = 9
    patch: int = 32  # CR input size; LR target patches are scale * patch
    batch: int = 8
    steps: int = 500
    lr: float = TRAIN_LR_SCRATCH
    max_shift: int = 1  # LR pixels searched by the loss
    uncertainty: bool = True  # add the Laplace NLL term
    val_fraction: float = 0.2
    val_every: int = 50
    val_samples: int = 0  # patches in the fixed validation set (0: one batch, at least 8); evaluated a batch at a time
    seed: int = 0
    shift_aug: float = 1.0  # random per-frame shift of the inputs, CR pixels (test-time shifts are LR pixels)
    bf16: bool = False  # bfloat16 autocast for forward/backward
    noise_aug: float = 0.03  # max std of white noise added to the normalised CR inputs (blur removes
    # most of the LR frames' own noise, which the network must still handle at test time)


@dataclass
class TrainState:
    step: int = 0
    best_val: float = float("inf")
    history: list = field(default_factory=list)  # (step, train_loss, val_loss)
    curve: list = field(default_factory=list)  # (step, train_loss) about 200 times a run: the report's curve
