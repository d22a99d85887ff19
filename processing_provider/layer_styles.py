"""Post-processors that style and group layers loaded when an algorithm completes."""
from qgis.core import (
    QgsColorRampShader, QgsContrastEnhancement, QgsProcessingLayerPostProcessorInterface, QgsRasterLayer,
    QgsRasterMinMaxOrigin, QgsRasterShader, QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer, QgsStyle,
)

KERNELS_GROUP = "Kernels"
RESULTS_GROUP = "StackSR"  # results go here, never into whichever group happens to be active


def move_into_group(layer, context, name: str) -> None:
    """Move ``layer``'s node into the top-level group ``name`` (created first in the tree if missing)."""
    project = context.project()
    if project is None:
        return
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is None:
        return
    group = root.findGroup(name) or root.insertGroup(0, name)
    if node.parent() is not group:
        group.addChildNode(node.clone())
        node.parent().removeChildNode(node)


def pseudocolor(layer: QgsRasterLayer, ramp_name: str = "Viridis", nearest: bool = True,
                limits: tuple[float, float] | None = None) -> None:
    """Continuous pseudocolor from ``limits`` (default: the band's min to max; nearest-neighbour
    resampling unless told)."""
    stats = layer.dataProvider().bandStatistics(1)
    lo, hi = limits if limits is not None else (stats.minimumValue, stats.maximumValue)
    ramp = QgsStyle.defaultStyle().colorRamp(ramp_name)
    shader_fn = QgsColorRampShader(lo, hi, ramp)
    shader_fn.classifyColorRamp(8, -1, layer.extent(), None)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    layer.setRenderer(renderer)
    if nearest:
        layer.resampleFilter().setZoomedInResampler(None)  # nearest neighbour
        layer.resampleFilter().setZoomedOutResampler(None)
    layer.triggerRepaint()


def gray_stretch(layer: QgsRasterLayer) -> None:
    """Grey levels stretched between the 2 % and 98 % cumulative counts (reflectance images)."""
    renderer = QgsSingleBandGrayRenderer(layer.dataProvider(), 1)
    lo, hi = layer.dataProvider().cumulativeCut(1, 0.02, 0.98, layer.extent(), 250000)
    ce = QgsContrastEnhancement(layer.dataProvider().dataType(1))
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
    ce.setMinimumValue(lo)
    ce.setMaximumValue(hi)
    renderer.setContrastEnhancement(ce)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.Limits.CumulativeCut)
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


class _KeptAlive(QgsProcessingLayerPostProcessorInterface):
    _alive: list = []

    @classmethod
    def create(cls):
        """A new post-processor per layer: LayerDetails takes ownership of (and deletes) it, and
        Processing calls it after the algorithm object is gone, so Python keeps a reference."""
        styler = cls()
        cls._alive.append(styler)
        return styler


class SRLayerStyler(_KeptAlive):
    """Super-resolved image: grey, 2-98 % stretch, in the results group."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            gray_stretch(layer)
            move_into_group(layer, context, RESULTS_GROUP)


class UncertaintyLayerStyler(_KeptAlive):
    """Uncertainty (standard deviation): Magma pseudocolor, smooth resampling, in the results group."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            pseudocolor(layer, "Magma", nearest=False)
            move_into_group(layer, context, RESULTS_GROUP)


class KernelLayerStyler(_KeptAlive):
    """Pseudocolor + move into the "Kernels" group of the project's layer tree. ``peak``: one colour
    scale (0 to the largest weight of the bank) for all kernels of a run, so their colours compare."""

    peak: float | None = None

    @classmethod
    def create(cls, peak: float | None = None):
        styler = super().create()
        styler.peak = peak
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if not isinstance(layer, QgsRasterLayer):
            return
        pseudocolor(layer, limits=None if self.peak is None else (0.0, self.peak))
        move_into_group(layer, context, KERNELS_GROUP)


def result_title(summary: dict) -> str:
    """A loaded result's name: the reference date's file, the method and the scale (e.g.
    'LT50350322009240PAC02_b4 piunet+ttf x3'), so that runs with other settings stay apart."""
    stem = summary["reference"].rsplit(".", 1)[0] if "." in summary["reference"] else summary["reference"]
    return f"{stem} {summary['method']} x{summary['scale']}"
