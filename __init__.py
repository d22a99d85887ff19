"""StackSR QGIS plugin package (also importable as plain Python: see core/ and cli.py)."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """QGIS entry point; imports QGIS-dependent code only here. Makes a PyTorch installed by
    StackSR (see deps.py) importable; shows nothing (headless qgis_process loads this too)."""
    from qgis.core import QgsApplication

    from .deps import activate, deps_dir
    from .plugin import StackSRPlugin

    activate(deps_dir(QgsApplication.qgisSettingsDirPath()))

    return StackSRPlugin(iface)
