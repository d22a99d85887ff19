"""Shared parameter handling for StackSR algorithms (stack inputs, errors, cancel)."""
import os

from qgis.core import (
    QgsApplication, QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterBand,
    QgsProcessingOutputFile, QgsProcessingParameterBoolean, QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum, QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer, QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QUrl
from qgis.PyQt.QtGui import QIcon

from ...core import params as P
from ...core.choices import DEVICE_DEFAULT, DEVICES
from ...core.convention import SUPPORTED_SCALES
from ...core.errors import StackSRError
from ...core.params import Setting
from ...core.progress import Cancelled
from ...core.choices import FMASK_INVALID_VALUES
from ...core.io.stack_sources import parse_int_list, sources_from_inputs
from ...deps import PLUGIN_DIR, deps_dir, missing_torch_message
from ..feedback import FeedbackMonitor

# one HTML page per algorithm, shipped with the plugin (works offline; scripts/build_help.py writes them)
HELP_DIR = os.path.join(PLUGIN_DIR, "help")
# the dialogs' choice widgets (ui/), imported by Processing only when a dialog is built
WIDGETS = __package__.rsplit(".", 2)[0] + ".ui.processing_widgets"
GROUP, GROUP_ID = "Super-resolution", "superresolution"  # the toolbox group of every StackSR algorithm and model


LABEL_MAX = 48  # characters of a parameter's label in the dialog (QGIS's default width shows about this many)


def svg_of(name: str) -> str:
    """``icons/<name>.svg`` (each step of the workflow has its own); empty name: the plugin's icon."""
    return os.path.join(PLUGIN_DIR, "icons", f"{name}.svg") if name else os.path.join(PLUGIN_DIR, "icon.svg")


def icon_of(name: str) -> QIcon:
    return QIcon(svg_of(name))


def help_url_of(algorithm_name: str) -> str:
    """The shipped HTML help page of an algorithm (or model), as a URL for the Help button."""
    return QUrl.fromLocalFile(os.path.join(HELP_DIR, f"{algorithm_name}.html")).toString()


NO_INPUT = "No input: choose the images of the stack, or one multiband raster."


class StackSRAlgorithm(QgsProcessingAlgorithm):
    """Base: subclasses define name/displayName/initAlgorithm and ``run_job``."""

    LAYERS, MULTIBAND, BANDS = "LAYERS", "MULTIBAND", "BANDS"
    MASKS, MASK_INVALID_VALUES = "MASKS", "MASK_INVALID_VALUES"
    ALLOW_UNGEOREFERENCED = "ALLOW_UNGEOREFERENCED"

    def createInstance(self):  # noqa: N802
        return type(self)()

    def group(self):
        return GROUP

    def groupId(self):  # noqa: N802
        return GROUP_ID

    ICON = ""  # icons/<ICON>.svg: each step of the workflow has its own

    def icon(self):
        return icon_of(self.ICON)

    def svgIconPath(self):  # noqa: N802 - the Graphical Modeler draws this one (a generic gear without it)
        return svg_of(self.ICON)

    def helpUrl(self):  # noqa: N802
        return help_url_of(self.name())

    def add_stack_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.LAYERS, "Input images (one raster per date)", QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.MULTIBAND, "Or: one multiband raster (bands are dates)", optional=True))
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, "Bands of the multiband raster to use (empty: all)", None, self.MULTIBAND,
            optional=True, allowMultiple=True))
        masks = QgsProcessingParameterMultipleLayers(
            self.MASKS, "Quality/cloud mask rasters (one per image, same order; or one multiband)",
            QgsProcessing.TypeRaster, optional=True)
        self.addParameter(masks)
        values = QgsProcessingParameterString(
            self.MASK_INVALID_VALUES, "Mask values that mark invalid pixels",
            ",".join(str(v) for v in FMASK_INVALID_VALUES), optional=True)
        # optional: graphical models saved before it existed keep validating
        unlocated = QgsProcessingParameterBoolean(
            self.ALLOW_UNGEOREFERENCED, "Accept rasters without georeferencing (outputs in pixel coordinates)", False,
            optional=True)
        for p in (values, unlocated):
            self.add(p, advanced=True)

    def addParameter(self, param, createOutput=True):  # noqa: N802 - every parameter passes here
        """A description longer than :data:`LABEL_MAX` characters made the dialog wider than QGIS opens it (its
        pickers' buttons behind a scrollbar): the dialog shows the part before its first parenthesis, the whole
        text becomes the parameter's help (the widget's tooltip)."""
        text = param.description()
        if len(text) > LABEL_MAX and " (" in text and not param.help():
            param.setHelp(text)
            param.setDescription(text[:text.index(" (")].rstrip(" :,"))
        return super().addParameter(param, createOutput)

    def add_report(self, name: str, description: str) -> None:
        """An HTML report, written by default, declared as a plain file output: QGIS's batch dialog (3.22 and
        later) passes no timestamp to the Results Viewer for HTML outputs, so every batch run of an algorithm
        with one ended in a Python error bar, an empty "layers were not correctly generated" and a progress
        bar stuck at 100 %. The report's path is in the log and the algorithm's results."""
        self.addParameter(QgsProcessingParameterFileDestination(
            name, description, "HTML files (*.html)", optional=True, createByDefault=True), createOutput=False)
        self.addOutput(QgsProcessingOutputFile(name, description))

    def add(self, param: QgsProcessingParameterDefinition, advanced: bool = False, optional: bool = False):
        """Add ``param`` (under the dialog's Advanced parameters when ``advanced``; ``optional``: also
        for parameters whose constructor has no such argument). Returns it."""
        flags = param.flags()
        if advanced:
            flags |= QgsProcessingParameterDefinition.Flag.FlagAdvanced
        if optional:
            flags |= QgsProcessingParameterDefinition.Flag.FlagOptional
        param.setFlags(flags)
        self.addParameter(param)
        return param

    @staticmethod
    def number(name: str, text: str, setting: Setting, legacy=None) -> QgsProcessingParameterNumber:
        """A number parameter with the core setting's default and range. A setting whose default is
        automatic (None) is optional and shown empty; ``legacy``: the placeholder value (e.g. -1) that
        earlier versions used for "automatic", still accepted from saved models and scripts."""
        kind = QgsProcessingParameterNumber.Type.Integer if setting.integer else QgsProcessingParameterNumber.Type.Double
        low = min([setting.minimum, *setting.special, *([legacy] if legacy is not None else [])])
        kw = {"minValue": low} if setting.maximum is None else {"minValue": low, "maxValue": setting.maximum}
        return QgsProcessingParameterNumber(name, text, kind, setting.default, setting.default is None, **kw)

    def optional_number(self, parameters, name: str, context, legacy=None):
        """The value of a number parameter, or None when left empty (or given the ``legacy`` placeholder)."""
        if parameters.get(name) is None or parameters.get(name) == "":
            return None
        double = self.parameterDefinition(name).dataType() == QgsProcessingParameterNumber.Type.Double
        value = (self.parameterAsDouble if double else self.parameterAsInt)(parameters, name, context)
        return None if legacy is not None and value == legacy else value

    def checkParameterValues(self, parameters, context):  # noqa: N802 - before the run, as the dialog's OK does
        ok, message = super().checkParameterValues(parameters, context)
        if ok and self.parameterDefinition(self.LAYERS) is not None \
                and not parameters.get(self.LAYERS) and not parameters.get(self.MULTIBAND):
            return False, NO_INPUT
        return ok, message

    SCALE, DEVICE, REFERENCE = "SCALE", "DEVICE", "REFERENCE"
    MIN_REGISTRATION_QUALITY = "MIN_REGISTRATION_QUALITY"

    def add_registration_quality_parameter(self) -> None:
        """Advanced and optional (graphical models saved before it existed keep validating)."""
        self.add(self.number(self.MIN_REGISTRATION_QUALITY, "Minimum registration quality (0-1: images below it are "
                             "left out; 0 keeps every image)", P.REGISTRATION_QUALITY), advanced=True, optional=True)

    @staticmethod
    def load_as(context, path: str | None, name: str, styler, run_stamp: str = "") -> None:
        """When ``path`` is loaded after the run: give it ``name`` and ``styler`` (a layer_styles post-processor);
        the layers loaded with one ``run_stamp`` keep their order among themselves."""
        if path and context.willLoadLayerOnCompletion(path):
            details = context.layerToLoadOnCompletionDetails(path)
            details.name = name
            details.setPostProcessor(styler.create(run_stamp=run_stamp))

    def add_scale_parameter(self) -> None:
        """An integer (scripts and saved models pass 2, 3 or 4); the dialog shows the choices x2 / x3 / x4."""
        scale = QgsProcessingParameterNumber(self.SCALE, "Scale factor", QgsProcessingParameterNumber.Type.Integer, 3,
                                             minValue=min(SUPPORTED_SCALES), maxValue=max(SUPPORTED_SCALES))
        scale.setMetadata({"widget_wrapper": {"class": f"{WIDGETS}.ScaleChoiceWrapper"}})
        self.addParameter(scale)

    def add_reference_parameter(self, legacy=None) -> None:
        """The reference date: its 0-based index in the stack, empty for the clearest image; the dialog
        offers the images picked as input by name. Optional: models saved before it existed keep validating."""
        reference = self.number(self.REFERENCE, "Reference date: the date the result shows (empty: the clearest image, of equally clear ones the most typical)", P.REFERENCE, legacy=legacy)
        reference.setMetadata({"widget_wrapper": {"class": f"{WIDGETS}.ReferenceChoiceWrapper"}})
        self.add(reference, optional=True)

    def add_earlier_output(self, name: str, description: str, extension: str, kind: str, advanced: bool = False) -> None:
        """An optional file input that the standard dialog fills from the files of ``kind``
        (:mod:`recent_outputs`) earlier steps of this session wrote; scripts, batch and models pass paths."""
        param = QgsProcessingParameterFile(name, description, extension=extension, optional=True)
        param.setMetadata({"widget_wrapper": {"class": f"{WIDGETS}.EarlierOutputWrapper"}, "stacksr_recent": kind})
        self.add(param, advanced=advanced)

    def add_device_parameter(self) -> None:
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES),
                                                     defaultValue=DEVICES.index(DEVICE_DEFAULT)))

    def device_choice(self, parameters, context) -> str:
        return DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]

    def stack_sources(self, parameters, context):
        layers = self.parameterAsLayerList(parameters, self.LAYERS, context) or []
        multiband = self.parameterAsRasterLayer(parameters, self.MULTIBAND, context)
        bands = self.parameterAsInts(parameters, self.BANDS, context) if multiband is not None else []
        masks = self.parameterAsLayerList(parameters, self.MASKS, context) or []
        if not layers and multiband is None:
            raise QgsProcessingException(NO_INPUT)
        try:
            return sources_from_inputs(
                [lyr.source() for lyr in layers],
                multiband.source() if multiband is not None else None,
                [b for b in bands if b > 0],
                [lyr.source() for lyr in masks],
                allow_ungeoreferenced=self.parameterAsBoolean(parameters, self.ALLOW_UNGEOREFERENCED, context),
            )
        except StackSRError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def invalid_mask_values(self, parameters, context):
        text = self.parameterAsString(parameters, self.MASK_INVALID_VALUES, context)
        try:
            return parse_int_list(text)
        except StackSRError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        monitor = FeedbackMonitor(feedback)
        try:
            import torch  # noqa: F401 - QGIS does not ship it; say how to get it before anything else
        except ImportError as exc:
            raise QgsProcessingException(missing_torch_message(deps_dir(QgsApplication.qgisSettingsDirPath()))) from exc
        try:
            return self.run_job(parameters, context, feedback, monitor)
        except Cancelled:
            feedback.reportError("Cancelled: no output was written.")
            return {}
        except (StackSRError, ArithmeticError, OSError) as exc:  # a diverging optimiser; a full disk
            raise QgsProcessingException(str(exc)) from exc

    def run_job(self, parameters, context, feedback, monitor):
        raise NotImplementedError
