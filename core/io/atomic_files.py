"""Outputs that appear whole or not at all: every file StackSR writes is written beside its
destination under a temporary name and renamed into place when complete. GDAL- and torch-free
(model files, kernel priors and reports use it where GDAL may be missing, e.g. a GPU machine)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator, Sequence

from ..errors import StackError


def _umask() -> int:
    """The process umask, read without changing it where the system says it (Linux), since
    setting it to read it back races with other threads creating files (QGIS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Every StackSR output goes through here, so an error or a cancel never leaves a
    partial file behind, and a previous output stays intact until the new one is complete.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".stacksr-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); a result must be as readable as any file the
        # user creates, i.e. follow the process umask
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise StackError(f"cannot write the output '{path}': {exc.strerror}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | None], suffix: str = "") -> Iterator[list[str | None]]:
    """:func:`atomic_output` for several files that belong together (None entries are skipped):
    all are renamed into place only when the whole block succeeds, so a failure while writing
    the last leaves none of them (and the previous ones intact)."""
    with contextlib.ExitStack() as stack:
        yield [None if p is None else stack.enter_context(atomic_output(p, suffix)) for p in paths]
