"""StackSR QGIS plugin package (also importable as plain Python: see core/ and cli.py)."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """QGIS entry point; imports QGIS-dependent code only here."""
    from .plugin import StackSRPlugin

    return StackSRPlugin(iface)
