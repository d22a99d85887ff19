"""Small pure helpers over LR stacks ``(..., T, h, w)`` shared by the classic methods, training,
inference and TTF: gap filling across dates and normalisation to the network's input range.
"""
from __future__ import annotations

import torch


def standardize_stack(frames: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """(frames - mean) / std over valid pixels; returns the normalised frames, mean and std."""
    vals = frames[valid]
    mean = float(vals.mean()) if vals.numel() else 0.0
    std = float(vals.std()) if vals.numel() > 1 else 1.0
    std = std if std > 1e-6 else 1.0
    return (frames - mean) / std, mean, std


def temporal_fill(frames: torch.Tensor, valid: torch.Tensor, frame_means: torch.Tensor | None = None) -> torch.Tensor:
    """Replace invalid pixels by the mean of the valid frames at that pixel (else the frame mean:
    ``frame_means`` ``(..., T)``, e.g. the whole stack's when ``frames`` is a window of it, by default
    the mean of the valid pixels given). ``(..., T, h, w)``: leading dimensions are independent stacks."""
    counts = valid.sum(dim=-3, keepdim=True)
    tmean = (frames * valid).sum(dim=-3, keepdim=True) / counts.clamp(min=1)
    if frame_means is None:
        fmean = (frames * valid).sum(dim=(-2, -1), keepdim=True) / valid.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
    else:
        fmean = frame_means.to(frames.dtype).to(frames.device)[..., None, None]
    fill = torch.where(counts > 0, tmean, fmean)
    return torch.where(valid, frames, fill)
