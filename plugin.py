"""QGIS plugin object: registers the StackSR Processing provider.

Nothing here touches ``iface`` at load time, so headless ``qgis_process`` works.
"""
from qgis.core import QgsApplication

from .processing_provider.provider import StackSRProvider


class StackSRPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        if self.provider is None:
            self.provider = StackSRProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
