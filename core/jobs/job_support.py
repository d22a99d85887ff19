"""What every job does first: check the scale and pick the device, list the input files that no
output may overwrite."""
from __future__ import annotations

from typing import Sequence

import torch

from ..convention import check_scale
from ..device import resolve_device
from ..io.stack_io import ImageSource, StackError


MIN_LR_SIZE = 4


def scale_and_device(scale: int, device: str) -> tuple[int, torch.device, str]:
    """Validated scale and the torch device with the reason it was chosen (StackError otherwise)."""
    try:
        return (check_scale(scale), *resolve_device(device))
    except ValueError as exc:
        raise StackError(str(exc)) from exc


def input_paths(sources: Sequence[ImageSource]) -> list[str]:
    return [p for s in sources for p in (s.path, s.mask_path) if p]
