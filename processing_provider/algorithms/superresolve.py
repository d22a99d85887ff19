"""Algorithm: super-resolve a stack with a trained PIUNet (or a classic method, to compare)."""
import uuid

from qgis.core import (
    QgsProcessingOutputString, QgsProcessingParameterBoolean, QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
)

from ...core import params as P
from ...core.job_settings import SuperResolveSettings
from ...core.choices import (NETWORK_METHODS, SR_METHOD_DEFAULT, SR_METHOD_LABELS, SR_METHODS, TTF_FIT_DEFAULT,
                             TTF_FIT_LABELS, TTF_FITS, TTF_METHODS)
from ..layer_styles import SRLayerStyler, TTFKernelLayerStyler, UncertaintyLayerStyler, result_title
from .. import recent_outputs as recent
from .base import StackSRAlgorithm



class SuperResolveStack(StackSRAlgorithm):
    ICON = "superresolve"
    METHOD, MODEL, TILE, TTF_ITERATIONS = "METHOD", "MODEL", "TILE", "TTF_ITERATIONS"
    OUTPUT, OUTPUT_UNCERTAINTY, OUTPUT_KERNEL = "OUTPUT", "OUTPUT_UNCERTAINTY", "OUTPUT_KERNEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    METHOD_USED, QUALITY = "METHOD_USED", "QUALITY"
    TTF_PER_TILE, TTF_LR, TTF_KERNEL_LR, TTF_FIT = "TTF_PER_TILE", "TTF_LR", "TTF_KERNEL_LR", "TTF_FIT"

    def name(self):
        return "superresolve"

    def displayName(self):  # noqa: N802
        return "3 - Super-resolve stack (PIUNet + TTF)"

    def shortDescription(self):  # noqa: N802 - the toolbox's tooltip
        return ("Super-resolves a time series into a GeoTIFF with the method that validates best on it (PIUNet + "
                "test-time finetuning or IBP), or with the method you pick.")

    def shortHelpString(self):  # noqa: N802
        return (
            "Super-resolves a time series with a PIUNet model trained by '2 - Train super-resolution model "
            "(self-supervised)', or with a classic method on the same input, to compare. Without a model file, "
            "the base model shipped with the plugin for the scale is used (x2, x3 and x4; pretrained self-supervised "
            "on real time series of several places and sensors): fine-tuning it on your stack with the Train "
            "algorithm can do better.\n\n"
            "Automatic (the default) tries the methods on your stack first. The classic ones: a quarter of the "
            "8-pixel blocks of every image but the reference is hidden, each method runs on the rest, and its result, "
            "moved onto each image, blurred and decimated, is compared with the hidden pixels; IBP with the default "
            "PSF or with the estimated kernels (when a kernel bank is given), whichever predicts better, is the "
            "classic choice. Then one scale down: the stack is blurred and decimated once more, and PIUNet + TTF, "
            "IBP, their blend and the reference image alone super-resolve it back to its own size, scored on the "
            "reference image's own pixels. IBP gives way when PIUNet + TTF beats it there by 0.5 dB, the blend by "
            "0.25 dB or the reference image alone by 2.5 dB (other dates showing other land); of those that do, the "
            "one furthest past its margin is used. A model whose file states that one scale down understates it "
            "(the shipped x2 model, fine-tuned on real Sentinel-2 pairs: by 1.88 dB) has the margins of PIUNet + TTF "
            "and of the blend lowered by that much (the blend's by its learned share). Otherwise IBP is used where the images explain each other as "
            "frames of one scene do (IBP predicts the hidden pixels 5 dB better than the reference image alone), and "
            "the blend (the mean of IBP and PIUNet + TTF, both run on each tile; the shipped x2 model weighs 3/4) wherever they do not: one image, or "
            "dates of changing land or light, where the blend was at or above IBP on nearly every real stack "
            "measured. Every output carries a quality estimate: "
            "each method's error and its gain over the reference image upsampled alone, in the log, the report and "
            "the raster's metadata (STACKSR_VALIDATION).\n\n"
            "PIUNet + TTF (test-time finetuning) first adapts the model's last layers and the blur kernels "
            "(through the kernel prior) to this stack, so that the super-resolved image, moved onto each image, "
            "blurred and decimated, reproduces every image of the stack, the reference (clearest) one weighing "
            "most (advanced: the reference image alone, as published); the reference's kernel can be written as "
            "a kernel layer.\n\n"
            "Large rasters are processed in tiles (tile size in input pixels; 0 processes the whole stack at once). "
            "Each tile is computed with a margin covering the network's reach and shares the raster's global "
            "statistics, so the tiled result equals the whole-stack result: there are no seams. TTF calibrates once "
            "and the calibrated model serves every tile; 'Finetune on every tile separately' adapts to each tile "
            "instead (for scenes whose blur or content changes across the raster). The optional uncertainty output "
            "is PIUNet's per-pixel "
            "standard deviation.\n\n"
            "The model must have been trained for the chosen scale; other files are refused."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_stack_parameters()
        self.add_earlier_output(self.MODEL, "Trained model (.pt; empty: the shipped base model)", "pt", recent.MODEL)
        self.add_scale_parameter()
        self.add_reference_parameter()
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, "Method", options=list(SR_METHOD_LABELS.values()), defaultValue=SR_METHODS.index(SR_METHOD_DEFAULT)))
        self.add_device_parameter()
        tile = self.number(self.TILE, f"Tile size in input pixels (0: whole stack; else at least {P.TILE.minimum})", P.TILE)
        ttf = self.number(self.TTF_ITERATIONS, "TTF iterations", P.TTF_ITERATIONS)
        per_tile = QgsProcessingParameterBoolean(
            self.TTF_PER_TILE, "Finetune on every tile separately (TTF; default: once, applied to all tiles)", False)
        lrs = [self.number(name, text, P.TTF_LR, legacy=0.0)
               for name, text in ((self.TTF_LR, "TTF learning rate, network (empty: the benchmarked 1e-4; larger over-fits)"),
                                  (self.TTF_KERNEL_LR, "TTF learning rate, kernel latent (empty: the benchmarked 2e-2)"))]
        # optional: graphical models saved before this parameter existed keep running with the default
        fit = QgsProcessingParameterEnum(self.TTF_FIT, "TTF makes the result explain",
                                         options=list(TTF_FIT_LABELS.values()), defaultValue=TTF_FITS.index(TTF_FIT_DEFAULT),
                                         optional=True)
        self.add_registration_quality_parameter()
        for p in (tile, ttf, per_tile, fit, *lrs):
            self.add(p, advanced=True)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Super-resolved raster"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_UNCERTAINTY, "Uncertainty (standard deviation)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_KERNEL, "TTF kernel layer", optional=True, createByDefault=False))
        self.add_report(self.OUTPUT_REPORT, "Run report")
        self.addOutput(QgsProcessingOutputString(self.METHOD_USED, "Method used"))
        self.addOutput(QgsProcessingOutputString(self.QUALITY, "Quality estimate (validation)"))

    def run_job(self, parameters, context, feedback, monitor):
        from ...core.jobs.sr_job import run_superresolve  # torch is imported only when running
        from ...core.jobs.validation import quality_line

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        unc = self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context)
        kernel = self.parameterAsOutputLayer(parameters, self.OUTPUT_KERNEL, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        method = SR_METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]
        settings = SuperResolveSettings(
            output, scale=self.parameterAsInt(parameters, self.SCALE, context), method=method,
            reference=self.optional_number(parameters, self.REFERENCE, context),
            model_path=self.parameterAsFile(parameters, self.MODEL, context) or None,
            tile=self.parameterAsInt(parameters, self.TILE, context),
            uncertainty_output=(unc or None) if method in (*NETWORK_METHODS, "auto") else None,
            ttf_iterations=self.parameterAsInt(parameters, self.TTF_ITERATIONS, context),
            ttf_per_tile=self.parameterAsBoolean(parameters, self.TTF_PER_TILE, context),
            ttf_lr=self.optional_number(parameters, self.TTF_LR, context, legacy=0.0),
            ttf_kernel_lr=self.optional_number(parameters, self.TTF_KERNEL_LR, context, legacy=0.0),
            ttf_fit=TTF_FITS[self.parameterAsEnum(parameters, self.TTF_FIT, context)],
            kernel_output=(kernel or None) if method in (*TTF_METHODS, "auto") else None,
            device=self.device_choice(parameters, context),
            min_registration_quality=self.optional_number(parameters, self.MIN_REGISTRATION_QUALITY, context),
            invalid_mask_values=self.invalid_mask_values(parameters, context), report_html=report)
        summary = run_superresolve(self.stack_sources(parameters, context), settings, monitor)
        stylers = {self.OUTPUT: SRLayerStyler, self.OUTPUT_UNCERTAINTY: UncertaintyLayerStyler,
                   self.OUTPUT_KERNEL: TTFKernelLayerStyler}
        title = result_title(summary)
        names = {self.OUTPUT: title, self.OUTPUT_UNCERTAINTY: f"{title} uncertainty",
                 self.OUTPUT_KERNEL: f"{title} TTF kernel"}
        stamp = f"{output}#{uuid.uuid4().hex}"  # one run's layers, told apart from a rerun's
        for name, path in ((self.OUTPUT, output), (self.OUTPUT_UNCERTAINTY, summary["uncertainty"]),
                           (self.OUTPUT_KERNEL, summary["kernel"])):
            self.load_as(context, path, names[name], stylers[name], run_stamp=stamp)
        results = {self.OUTPUT: output, self.METHOD_USED: summary["method"], self.QUALITY: quality_line(summary)}
        if summary["report"]:
            results[self.OUTPUT_REPORT] = summary["report"]
        if summary["uncertainty"]:
            results[self.OUTPUT_UNCERTAINTY] = summary["uncertainty"]
        if summary["kernel"]:
            results[self.OUTPUT_KERNEL] = summary["kernel"]
        return results
