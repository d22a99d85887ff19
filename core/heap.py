"""Reusing freed memory for large tensors while a job runs (glibc, i.e. Linux).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mapping and
unmaps it on free, so each large tensor a CPU job makes (a 256-px tile's feature map is 75 MB)
costs the kernel a page fault and a page zeroing per 4 KB on first touch. On the 2-core benchmark
machine that was most of the time: a script timing PIUNet's forward at 128, 256 and 302-px windows
spent 38 s of its 42 in the kernel, and the larger windows cost 80 us per window pixel against 36 us
with the memory kept for reuse; TTF on a 192-px window ran 1.6 x faster (BENCHMARKS.md). :func:`heap_reuse` makes glibc serve large blocks
from its heap and keep freed ones for the next tensor while a job runs, then gives the memory back
(``malloc_trim``) and restores glibc's defaults. Elsewhere (Windows, macOS, musl) it does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Iterator

_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024  # glibc's defaults, restored after the last job
_DEFAULT_MMAP_MAX = 65536
_KEEP = 1 << 30  # freed memory kept at the heap's top before glibc trims it

_lock = threading.Lock()
_depth = 0  # jobs running (nested, or in QGIS's worker threads): the settings are the process's
_level = 0  # resident memory (pages) between two units of work when it was last trimmed
_CREEP = 1.05  # growth above that level that makes tidy() trim again


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


def active() -> bool:
    """Whether a job is holding freed memory for reuse now."""
    return _depth > 0


def _resident() -> int:
    """This process's resident memory in pages (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def tidy() -> None:
    """Between two units of work (tiles): when the last one took the process's resident memory 5 %
    above the level of the last trim, give freed memory back inside a job too (glibc's
    ``malloc_trim`` releases whole free pages anywhere in the heap). Tiles of one shape reuse the same
    blocks and leave the resident memory where it was, so they pay nothing; a new shape (an edge
    tile), or blocks that GDAL or numpy keep between tiles, can leave holes that the next tile cannot
    reuse, and trimming then keeps the heap from creeping up tile by tile. Trimming after every tile
    did the same for memory but cost about 15 % of the time, each tile faulting its whole working set
    in again (BENCHMARKS.md)."""
    global _level
    if _depth > 0 and _LIBC is not None:
        now = _resident()
        if now > _level * _CREEP:
            _LIBC.malloc_trim(0)
            _level = now


@contextlib.contextmanager
def heap_reuse() -> Iterator[None]:
    """While inside (also usable as a decorator), large freed blocks stay in the process for reuse;
    on leaving the last one, the memory goes back to the system."""
    global _depth, _level
    with _lock:
        if _depth == 0 and _LIBC is not None:
            _level = 0
            _LIBC.mallopt(_M_MMAP_MAX, 0)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _KEEP)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _LIBC is not None:
                _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                _LIBC.malloc_trim(0)
