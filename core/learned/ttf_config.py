"""Test-time finetuning's settings, its guards and what it reports: shared by the TTF runner, the jobs and the
method choice without importing the runner."""
from __future__ import annotations

from dataclasses import dataclass

from ..choices import TTF_FIT_DEFAULT
from ..params import TTF_ITERATIONS


@dataclass(frozen=True)
class TTFConfig:
    iterations: int = TTF_ITERATIONS.default
    lr_net: float = 1e-4
    lr_kernel: float = 2e-2
    crop: int = 64  # LR pixels of the calibration window (0: whole stack)
    max_shift: int = 1
    kernel_warmup: int = 30  # kernel-only iterations first: the untuned network's best fit, the guard's baseline
    holdout: float = 0.25  # share of the reference's blocks kept out of the loss to check the finetuning
    holdout_block: int = 8  # LR pixels per held-out block
    guard: str = "final"  # what decides whether finetuning is kept: "frames", the other frames of the stack (the
    # last iteration unless the untuned network explains them better); on held-out blocks of the reference, "best"
    # (the best iteration, else the untuned network) or "final" (the last, unless the untuned network is better);
    # "off": always the last iteration
    guard_tolerance: float = 0.02  # "final"/"frames": relative worsening of the check tolerated before undoing
    fit: str = TTF_FIT_DEFAULT  # what the output must explain: every frame of the "stack" (each moved by its registration
    # and degraded with its own kernel latent), or the "reference" frame alone (as published); see choices.TTF_FIT_LABELS
    reference_weight: float = 0.5  # "stack": the reference's share of the loss (the user asked for that date)
    grid_weight: float = 1.0  # weight of the stride-scale band of the change TTF makes (losses.grid_band_l1), times how
    # unseen the band is by the fitted frames' sub-pixel phases (losses.unseen_grid_share): the frames of co-gridded
    # products cannot tell that band from their low frequencies, so without it finetuning drifts into a grid texture


GUARDS = ("best", "final", "frames", "off")


@dataclass
class TTFResult:
    """What :func:`test_time_finetune` did: the loss curve on the reference, the guard's check
    curve (loss on the other frames, or on held-out blocks; NaN without a guard), the check of the
    untuned network with its best kernel, and the iteration kept (0: the untuned network, i.e.
    finetuning did not pass the guard)."""

    losses: list[float]
    check_losses: list[float]
    baseline: float
    kept_iteration: int
    kept_check: float  # the guard's check of what was returned (NaN without a guard)

    @property
    def reverted(self) -> bool:
        return self.kept_iteration == 0
