"""The StackSR Processing provider."""
import os

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingProvider

from ..deps import PLUGIN_DIR
from .algorithms.base import GROUP, GROUP_ID, help_url_of, icon_of, svg_of
from .algorithms.chain import SuperResolveChain
from .algorithms.classic_sr import ClassicSuperResolve
from .algorithms.estimate_kernels import EstimateKernels
from .algorithms.score import ScoreAgainstReference
from .algorithms.superresolve import SuperResolveStack
from .algorithms.train import TrainSelfSupervised


EXAMPLE_MODEL = os.path.join(PLUGIN_DIR, "examples", "stacksr_chain.model3")


class ExampleModel(QgsProcessingModelAlgorithm):
    """The shipped Graphical Modeler model, listed with the algorithms (open it in the Modeler to adapt it)."""

    def __init__(self):
        super().__init__()
        self.fromFile(EXAMPLE_MODEL)

    def displayName(self):  # noqa: N802
        return "4 - Example graphical model: estimate kernels, train, super-resolve"

    def shortDescription(self):  # noqa: N802
        return "The shipped Graphical Modeler model chaining algorithms 1, 2 and 3; edit a copy in the Modeler."

    def group(self):
        return GROUP

    def groupId(self):  # noqa: N802
        return GROUP_ID

    def shortHelpString(self):  # noqa: N802
        return ("The Graphical Modeler model shipped with the plugin: 1 - Estimate degradation kernels, 2 - Train "
                "super-resolution model (self-supervised) with those kernels, 3 - Super-resolve stack with the trained "
                "model, with the stack, masks and budgets as model inputs. It does what '0 - Super-resolve a time "
                "series' does in one algorithm, step by step. To change a step (e.g. a classic method, other training "
                "settings): Plugins > StackSR > Edit the example model in the Graphical Modeler... opens a copy; "
                "save it as your own model. The file is examples/stacksr_chain.model3 in the plugin's folder "
                "(<QGIS profile>/python/plugins/stacksr).")

    def helpUrl(self):  # noqa: N802
        return help_url_of(self.name())

    def icon(self):
        return icon_of("chain")

    def svgIconPath(self):  # noqa: N802
        return svg_of("chain")

    def createInstance(self):  # noqa: N802
        return ExampleModel()


class StackSRProvider(QgsProcessingProvider):
    def id(self):
        return "stacksr"

    def name(self):
        return "StackSR"

    def longName(self):  # noqa: N802
        return "StackSR multi-temporal super-resolution"

    def icon(self):
        return icon_of("")

    def svgIconPath(self):  # noqa: N802
        return svg_of("")

    def loadAlgorithms(self):  # noqa: N802
        self._model = ExampleModel()
        for alg in (SuperResolveChain(), ClassicSuperResolve(), EstimateKernels(), TrainSelfSupervised(),
                    SuperResolveStack(), ScoreAgainstReference(), self._model):
            self.addAlgorithm(alg)
        # the model's outputs come from its steps, which are this provider's algorithms: resolved once the
        # provider is in the registry (while it loads they are not there yet)
        QgsApplication.processingRegistry().providerAdded.connect(self._resolve_model)

    def _resolve_model(self, provider_id: str) -> None:
        if provider_id == self.id():
            QgsApplication.processingRegistry().providerAdded.disconnect(self._resolve_model)
            self._model.fromFile(EXAMPLE_MODEL)

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        return ["tif"]
