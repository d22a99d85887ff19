"""Algorithm: estimate one degradation kernel per image of a stack (DIP-FKP)."""
import os

from qgis.core import (
    QgsProcessingContext, QgsProcessingUtils, QgsProcessingOutputMultipleLayers, QgsProcessingOutputNumber,
    QgsProcessingParameterEnum, QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination, QgsProcessingParameterFolderDestination,
)

from ...core import params as P
from ...core.job_settings import KernelSettings
from ...core.choices import KERNEL_MODE_DEFAULT, KERNEL_MODE_LABELS, KERNEL_MODES
from ..layer_styles import KernelLayerStyler, kernel_run_title
from .. import recent_outputs as recent
from .base import StackSRAlgorithm



class EstimateKernels(StackSRAlgorithm):
    ICON = "kernels"
    MODE, ITERATIONS, CROP, PRIOR, SEED = "MODE", "ITERATIONS", "CROP", "PRIOR", "SEED"
    KERNEL_SIZE = "KERNEL_SIZE"
    OUTPUT_BANK, OUTPUT_LAYERS, OUTPUT_REPORT = "OUTPUT_BANK", "OUTPUT_LAYERS", "OUTPUT_REPORT"
    KERNEL_LAYERS, SECONDS = "KERNEL_LAYERS", "SECONDS"

    def name(self):
        return "estimatekernels"

    def displayName(self):  # noqa: N802
        return "1 - Estimate degradation kernels"

    def shortDescription(self):  # noqa: N802 - the toolbox's tooltip
        return "Estimates the blur kernel of every image of a time series (DIP-FKP) into a kernel bank and kernel layers."

    def shortHelpString(self):  # noqa: N802
        return (
            "Estimates the blur kernel that degraded each image of a time series, with DIP-FKP: a Deep Image "
            "Prior generator and a Flow-based Kernel Prior (a normalizing flow trained on anisotropic Gaussian "
            "kernels, shipped with the plugin).\n\n"
            "Joint mode (the default) explains all images with one shared high-resolution image and per-image "
            "kernels, shifts and gain/offset; on the project's benchmark it is 7 times faster than per-image "
            "mode and more accurate, above all in the kernel angle. Images that do not register with the others "
            "(land changed, clouds) keep the default PSF and are listed in the log and the gallery. Per-image "
            "mode follows the paper (one generator per image).\n\n"
            "Blind estimation cannot tell the scene's own sharpness from the blur all kernels share, so that "
            "common part is set to the default PSF's mean width; each kernel's elongation, angle and width "
            "relative to the others are estimated.\n\n"
            "Outputs: a kernel bank file (.npz) that training and super-resolution read, one float32 GeoTIFF per "
            "kernel, placed over the centre of the images in their CRS with the output pixel size (so it shows "
            "its real ground footprint), loaded in a 'Kernels' group, and "
            "an HTML gallery with each kernel's fitted sigmas and angle."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_stack_parameters()
        self.add_scale_parameter()
        self.addParameter(QgsProcessingParameterEnum(
            self.MODE, "Mode", options=list(KERNEL_MODE_LABELS.values()), defaultValue=KERNEL_MODES.index(KERNEL_MODE_DEFAULT)))
        self.add_device_parameter()
        advanced = [
            self.number(self.ITERATIONS, "Iterations (empty: the mode's default)", P.KERNEL_ITERATIONS, legacy=0),
            self.number(self.KERNEL_SIZE, "Kernel size in output pixels (empty: 4 x scale + 3, the size of the shipped priors)",
                        P.KERNEL_SIZE, legacy=0),
            self.number(self.CROP, f"Crop size used for estimation, in input pixels (empty: 40; 0: the whole image; else at least "
                        f"{P.KERNEL_CROP.minimum})", P.KERNEL_CROP, legacy=-1),
            QgsProcessingParameterFile(self.PRIOR, "Kernel prior (FKP) file (empty: the shipped one)",
                                       extension="pt", optional=True),
            self.number(self.SEED, "Random seed", P.SEED),
        ]
        for p in advanced:
            self.add(p, advanced=True)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_BANK, "Kernel bank", "StackSR kernel bank (*.npz)"))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT_LAYERS, "Kernel layers folder", optional=True, createByDefault=True))
        self.add_report(self.OUTPUT_REPORT, "Kernel gallery")
        self.addOutput(QgsProcessingOutputMultipleLayers(self.KERNEL_LAYERS, "Kernel layers"))
        self.addOutput(QgsProcessingOutputNumber(self.SECONDS, "Estimation time (s)"))

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802 - main thread, after the run
        """In the QGIS desktop, the bank just estimated (often a temporary file) goes to the Kernel viewer if it is
        open, else the message bar offers it there (opening by itself, the viewer covered the map and the toolbox
        after every run)."""
        from qgis.utils import iface, plugins

        plugin = plugins.get("stacksr") if iface is not None else None
        if plugin is not None and getattr(self, "_bank", None):
            run = getattr(self, "_run", "")
            plugin.offer_kernel_viewer(self._bank, f"kernels of {run}" if run else "kernels")
        return {}

    def run_job(self, parameters, context, feedback, monitor):
        from ...core.jobs.kernel_job import run_estimate_kernels  # torch is imported only when running

        crop = self.optional_number(parameters, self.CROP, context, legacy=-1)
        iterations = self.optional_number(parameters, self.ITERATIONS, context, legacy=0)
        prior = self.parameterAsFile(parameters, self.PRIOR, context)
        bank = self.parameterAsFileOutput(parameters, self.OUTPUT_BANK, context)
        folder = self.parameterAsFileOutput(parameters, self.OUTPUT_LAYERS, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        settings = KernelSettings(
            bank, scale=self.parameterAsInt(parameters, self.SCALE, context),
            mode=KERNEL_MODES[self.parameterAsEnum(parameters, self.MODE, context)],
            iterations=iterations, crop=crop, prior_path=prior or None,
            kernel_size=self.optional_number(parameters, self.KERNEL_SIZE, context, legacy=0),
            device=self.device_choice(parameters, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            layers_folder=folder or None, report_html=report or None,
            invalid_mask_values=self.invalid_mask_values(parameters, context))
        summary = run_estimate_kernels(self.stack_sources(parameters, context), settings, monitor)
        for k in summary["kernels"]:
            feedback.pushInfo(f"{k['image']}: sigma1 {k['sigma1']:.2f}, sigma2 {k['sigma2']:.2f} px, angle {k['theta_deg']:.0f} deg")
        run = kernel_run_title(summary)
        for path, image in zip(summary["layers"], (k["image"] for k in summary["kernels"])):
            details = QgsProcessingContext.LayerDetails(
                os.path.splitext(os.path.basename(path))[0], context.project(), self.OUTPUT_LAYERS)
            details.layerTypeHint = QgsProcessingUtils.LayerHint.Raster
            details.setPostProcessor(KernelLayerStyler.create(summary["peak"], run, image, bank))
            context.addLayerToLoadOnCompletion(path, details)
        self._bank, self._run = bank, run  # for postProcessAlgorithm: the viewer opens on it in the desktop
        recent.remember(recent.KERNEL_BANK, bank)  # steps 2 and IBP's dialogs offer it
        results = {self.OUTPUT_BANK: bank, self.KERNEL_LAYERS: summary["layers"], self.SECONDS: summary["seconds"]}
        if folder:
            results[self.OUTPUT_LAYERS] = folder
        if report:
            results[self.OUTPUT_REPORT] = report
        return results
