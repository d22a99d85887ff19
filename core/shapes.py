"""The one shape check of the public entry points (``blur_downsample``, ``ibp``, ``predict``,
kernel estimation): a clear ValueError naming the argument, instead of an error deep in torch."""
from __future__ import annotations


def check_shape(name: str, x, dims: str, like=None, like_name: str = "frames") -> None:
    """Check that ``x`` has the dimensions ``dims`` (e.g. "T, H, W"; a leading "..." allows any
    number of leading dimensions) and, with ``like``, exactly ``like``'s shape."""
    names = [d.strip() for d in dims.split(",")]
    fixed = [d for d in names if d != "..."]
    shape = tuple(x.shape)
    ok = len(shape) >= len(fixed) if names[0] == "..." else len(shape) == len(fixed)
    if not ok:
        raise ValueError(f"{name} must be ({dims}), got shape {shape}")
    if like is not None and shape != tuple(like.shape):
        raise ValueError(f"{name} must have the shape of {like_name} {tuple(like.shape)}, got {shape}")
