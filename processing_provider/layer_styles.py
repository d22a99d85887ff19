"""Post-processors that style and group layers loaded when an algorithm completes."""
from qgis.core import (
    QgsColorRampShader, QgsProcessingLayerPostProcessorInterface, QgsRasterLayer, QgsRasterShader,
    QgsSingleBandPseudoColorRenderer, QgsStyle,
)

KERNELS_GROUP = "Kernels"


def pseudocolor(layer: QgsRasterLayer, ramp_name: str = "Viridis") -> None:
    """Continuous pseudocolor from the band's min to max, nearest-neighbour resampling."""
    stats = layer.dataProvider().bandStatistics(1)
    ramp = QgsStyle.defaultStyle().colorRamp(ramp_name)
    shader_fn = QgsColorRampShader(stats.minimumValue, stats.maximumValue, ramp)
    shader_fn.classifyColorRamp(8, -1, layer.extent(), None)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(stats.minimumValue)
    renderer.setClassificationMax(stats.maximumValue)
    layer.setRenderer(renderer)
    layer.resampleFilter().setZoomedInResampler(None)  # nearest neighbour
    layer.resampleFilter().setZoomedOutResampler(None)
    layer.triggerRepaint()


class KernelLayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Pseudocolor + move into the "Kernels" group of the project's layer tree."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if not isinstance(layer, QgsRasterLayer):
            return
        pseudocolor(layer)
        project = context.project()
        if project is None:
            return
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        group = root.findGroup(KERNELS_GROUP) or root.insertGroup(0, KERNELS_GROUP)
        if node.parent() is not group:
            group.addChildNode(node.clone())
            node.parent().removeChildNode(node)

    _alive: list = []

    @classmethod
    def create(cls) -> "KernelLayerStyler":
        """A new styler per layer: LayerDetails takes ownership of (and deletes) it, and
        Processing calls it after the algorithm object is gone, so Python keeps a reference."""
        styler = cls()
        cls._alive.append(styler)
        return styler
