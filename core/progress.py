"""Progress reporting and cancellation shared by the CLI and the QGIS provider.

Core functions take an optional :class:`Monitor`; front ends subclass it to
forward progress to a progress bar or a ``QgsProcessingFeedback``.
"""
from __future__ import annotations


class Cancelled(Exception):
    """Raised inside core work when the user asked to cancel."""


class Monitor:
    """No-op progress sink; subclasses override :meth:`_emit`, :meth:`is_cancelled`, :meth:`info`."""

    def __init__(self, start: float = 0.0, end: float = 1.0, parent: "Monitor | None" = None):
        self._start, self._end, self._parent = start, end, parent

    def _emit(self, fraction: float, message: str) -> None:
        """Receive overall progress in [0, 1]; the root monitor overrides this."""

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress of the current (sub-)task, ``fraction`` in [0, 1]."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        overall = self._start + (self._end - self._start) * fraction
        if self._parent is not None:
            self._parent.progress(overall, message)
        else:
            self._emit(overall, message)

    def is_cancelled(self) -> bool:
        return self._parent.is_cancelled() if self._parent is not None else False

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self.is_cancelled():
            raise Cancelled("cancelled by the user")

    def info(self, message: str) -> None:
        if self._parent is not None:
            self._parent.info(message)

    def sub(self, start: float, end: float) -> "Monitor":
        """A monitor whose [0, 1] maps onto [start, end] of this one."""
        return Monitor(start, end, parent=self)


def ensure_monitor(monitor: "Monitor | None") -> Monitor:
    return monitor if monitor is not None else Monitor()
