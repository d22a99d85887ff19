"""The one base class of the errors a user can cause (bad input, bad setting, wrong file).

Front ends catch :class:`StackSRError` alone and show its message on one line (the CLI exits 2,
QGIS raises QgsProcessingException); any other exception is a bug and keeps its traceback.
Torch- and GDAL-free, so every module (and the CLI before it imports torch) can use it.
"""
from __future__ import annotations


class StackSRError(ValueError):
    """A bad input or setting; the message names it and says what is accepted.

    A ValueError, so code written against the earlier per-module errors keeps catching it."""


class ParameterError(StackSRError):
    """A numeric or choice parameter outside what the job accepts (see :mod:`params`)."""


class StackError(StackSRError):
    """An input stack (or an output path) that cannot be used; the message names the offending file."""
