"""Post-processors that style and group layers loaded when an algorithm completes."""
import os

from qgis.core import (
    QgsColorRampShader, QgsContrastEnhancement, QgsProcessingLayerPostProcessorInterface, QgsRasterLayer,
    QgsRasterMinMaxOrigin, QgsRasterShader, QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer, QgsStyle,
)

from ..core.io.kernel_bank import UNCERTAINTY_PERCENTILE

KERNELS_GROUP = "Kernels"
RESULTS_GROUP = "StackSR"  # results go here, never into whichever group happens to be active


# custom properties of a kernel layer: the image its kernel belongs to and the bank it came from (the
# Kernel viewer selects the layer of the kernel clicked)
KERNEL_IMAGE, KERNEL_BANK = "stacksr/kernel_image", "stacksr/kernel_bank"


RUN, RANK = "stacksr/run", "stacksr/rank"


def move_into_group(layer, context, *path: str, run: str = "", rank: int | None = None) -> None:
    """Move ``layer``'s node into the group at ``path`` (top-level group, then subgroups; each created
    first in its parent if missing). A name the group already shows gets a number (' (2)', ...): reruns
    with the same settings stay apart. With a ``rank``, the layer goes on top of the group, above every earlier
    run (a rerun's result must be what the map shows), and below the layers of its own run (``run``) of a lower
    rank (the TTF kernel, then the result, then its uncertainty, which would otherwise cover the result)."""
    project = context.project()
    if project is None:
        return
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is None:
        return
    group = root
    for name in path:
        groups = [g for g in group.children() if g.nodeType() == g.NodeType.NodeGroup]
        found = next((g for g in groups if g.name() == name), None)
        if found is None:
            # kernels are inputs' footprints, not results: their group never goes above the results' group
            results = next((i for i, c in enumerate(group.children()) if group is root and name == KERNELS_GROUP
                            and c.nodeType() == c.NodeType.NodeGroup and c.name() == RESULTS_GROUP), -1)
            found = group.insertGroup(results + 1, name)
        group = found
    taken = {n.layer().name() for n in group.findLayers() if n.layer() is not None and n.layer() is not layer}
    base, number = layer.name(), 2
    while layer.name() in taken:
        layer.setName(f"{base} ({number})")
        number += 1
    if rank is None:  # appended (the desktop may have added it inside the group already, at its top)
        if node.parent() is not group or group.children()[-1] is not node:
            parent = node.parent()
            group.addChildNode(node.clone())
            parent.removeChildNode(node)
        return
    layer.setCustomProperty(RUN, run)
    layer.setCustomProperty(RANK, int(rank))
    index = 0
    for child in group.children():
        other = child.layer() if child.nodeType() == child.NodeType.NodeLayer else None
        if other is None or other is layer or other.customProperty(RUN) != run or int(other.customProperty(RANK, 99)) > rank:
            break
        index += 1
    clone = node.clone()
    parent = node.parent()
    group.insertChildNode(index, clone)
    parent.removeChildNode(node)


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

    rank: int | None = None  # the place among a run's results (move_into_group); None: appended
    run: str = ""

    @classmethod
    def create(cls, run_stamp: str = ""):
        """A new post-processor per layer: LayerDetails takes ownership of (and deletes) it, and
        Processing calls it after the algorithm object is gone, so Python keeps a reference.
        ``run_stamp``: what the layers of one run share (their order among themselves)."""
        styler = cls()
        styler.stamp = run_stamp
        cls._alive.append(styler)
        return styler


class SRLayerStyler(_KeptAlive):
    """Super-resolved image: grey, 2-98 % stretch, on top of the results group (under its TTF kernel)."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            gray_stretch(layer)
            move_into_group(layer, context, RESULTS_GROUP, run=self.stamp, rank=1)


class UncertaintyLayerStyler(_KeptAlive):
    """Uncertainty (standard deviation): Magma pseudocolor from 0 to its 98th percentile (the report's ramp and
    range), smooth resampling, under its run's result."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):  # as the run's report shows it (job_reports.uncertainty_range)
            top = layer.dataProvider().cumulativeCut(1, 0.0, UNCERTAINTY_PERCENTILE / 100, layer.extent(), 250000)[1]
            pseudocolor(layer, "Magma", nearest=False, limits=(0.0, top if top > 0 else 1.0))
            move_into_group(layer, context, RESULTS_GROUP, run=self.stamp, rank=2)


class KernelLayerStyler(_KeptAlive):
    """Pseudocolor + move into the run's subgroup of the "Kernels" group. ``peak``: one colour scale
    (0 to the largest weight of the bank) for all kernels of a run, so their colours compare;
    ``run``: the run's subgroup (none: straight into "Kernels"); ``image``/``bank``: recorded on the
    layer so that the Kernel viewer can select it."""

    home = (KERNELS_GROUP,)
    peak: float | None = None
    run: str = ""
    image: str = ""
    bank: str = ""

    @classmethod
    def create(cls, peak: float | None = None, run: str = "", image: str = "", bank: str = "", run_stamp: str = ""):
        styler = super().create(run_stamp)
        styler.peak, styler.run, styler.image, styler.bank = peak, run, image, bank
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if not isinstance(layer, QgsRasterLayer):
            return
        pseudocolor(layer, limits=None if self.peak is None else (0.0, self.peak))
        if self.image:
            layer.setCustomProperty(KERNEL_IMAGE, self.image)
            layer.setCustomProperty(KERNEL_BANK, os.path.abspath(self.bank))
        move_into_group(layer, context, *self.home, *((self.run,) if self.run else ()),
                        **({"run": self.stamp, "rank": self.rank} if self.rank is not None else {}))
        if self.rank is None and context.project() is not None:
            # a run's kernels share one footprint: only its first image's shows, the others are a click away
            node = context.project().layerTreeRoot().findLayer(layer.id())
            if node is not None and node.parent().children()[0] is not node:
                node.setItemVisibilityChecked(False)
                node.setExpanded(False)  # one legend per run, not one per kernel (they share the run's scale)


class TTFKernelLayerStyler(KernelLayerStyler):
    """The TTF kernel of a super-resolution run: a result, so it goes with the run's other results, on top (its
    footprint is small: under the result it would be hidden)."""

    home = (RESULTS_GROUP,)
    rank = 0


def result_title(summary: dict) -> str:
    """A loaded result's name: the reference date's file, the method and the scale (e.g.
    'LT50350322009240PAC02_b4 piunet+ttf x3'), so that runs with other settings stay apart."""
    stem = summary["reference"].rsplit(".", 1)[0] if "." in summary["reference"] else summary["reference"]
    return f"{stem} {summary['method']} x{summary['scale']}"


def kernel_run_title(summary: dict) -> str:
    """A kernel run's subgroup: time, number of images, scale and mode (e.g. '04:51:07 - 8 images, x3,
    joint'), so that reruns stay apart."""
    import time

    return f"{time.strftime('%H:%M:%S')} - {len(summary['kernels'])} images, x{summary['scale']}, {summary['mode']}"
