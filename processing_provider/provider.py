"""The StackSR Processing provider."""
import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..deps import PLUGIN_DIR
from .algorithms.chain import SuperResolveChain
from .algorithms.classic_sr import ClassicSuperResolve
from .algorithms.estimate_kernels import EstimateKernels
from .algorithms.score import ScoreAgainstReference
from .algorithms.superresolve import SuperResolveStack
from .algorithms.train import TrainSelfSupervised


class StackSRProvider(QgsProcessingProvider):
    def id(self):
        return "stacksr"

    def name(self):
        return "StackSR"

    def longName(self):  # noqa: N802
        return "StackSR multi-temporal super-resolution"

    def icon(self):
        return QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))

    def loadAlgorithms(self):  # noqa: N802
        for alg in (SuperResolveChain(), ClassicSuperResolve(), EstimateKernels(), TrainSelfSupervised(),
                    SuperResolveStack(), ScoreAgainstReference()):
            self.addAlgorithm(alg)

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        return ["tif"]
