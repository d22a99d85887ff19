"""The files earlier StackSR runs of this QGIS session wrote (kernel banks, models), newest first: what the next
step's dialog offers, so the steps connect without copying temporary paths out of the log.

Per process, so qgis_process, scripts and saved models never see another run's files: only the standard dialog
offers them (ui/processing_widgets.EarlierOutputWrapper), and a parameter left empty keeps its own meaning.
"""
import os

KERNEL_BANK, MODEL = "kernel bank", "model"
KEEP = 10  # per kind

_recent: dict = {}


def remember(kind: str, path: str | None) -> None:
    if path:
        path = os.path.abspath(path)
        paths = [p for p in _recent.get(kind, []) if p != path]
        _recent[kind] = ([path] + paths)[:KEEP]


def recent(kind: str) -> list:
    """The files of ``kind`` written in this session that still exist, newest first."""
    return [p for p in _recent.get(kind, []) if os.path.isfile(p)]
