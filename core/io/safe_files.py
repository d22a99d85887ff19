"""The one loading sequence of StackSR's own files (PIUNet models, kernel priors, kernel banks):
exists -> read safely (no code runs: ``weights_only`` / ``allow_pickle=False``, chosen by the
caller's reader) -> our format -> our format version -> the scale (and kernel size) asked for.
Every refusal is the caller's error class with one message naming the file."""
from __future__ import annotations

import os
from typing import Any, Callable


def read_safely(path: str, kind: str, error: type[Exception], read: Callable[[str], Any]) -> Any:
    """``read(path)``, or ``error`` when the file is missing or anything about it is unreadable."""
    if not path or not os.path.exists(path):
        raise error(f"{kind} '{path}' does not exist")
    try:
        return read(path)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is "not ours"
        raise error(f"'{path}' is not a StackSR {kind} ({type(exc).__name__})") from exc


def check_header(path: str, kind: str, error: type[Exception], header: Any, file_format: str, version: int,
                 scale: int | None = None, size: int | None = None) -> None:
    """Refuse ``header`` (a dict with format, version and optionally scale / size) unless it is
    ``file_format`` at ``version`` for ``scale`` and ``size`` (None: any)."""
    if not isinstance(header, dict) or header.get("format") != file_format:
        raise error(f"'{path}' is not a StackSR {kind}")
    if header.get("version") != version:
        raise error(f"{kind} '{path}' has format version {header.get('version')}, expected {version}")
    if scale is not None and header.get("scale") != scale:
        raise error(f"{kind} '{path}' is for scale x{header.get('scale')}, not x{scale}")
    if size is not None and header.get("size") != size:
        raise error(f"{kind} '{path}' has {header.get('size')}x{header.get('size')} kernels, not {size}x{size}")
