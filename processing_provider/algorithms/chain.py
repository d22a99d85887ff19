"""Algorithm: the whole method in one click (estimate kernels -> fine-tune -> super-resolve)."""
import os
import uuid

from qgis.core import (
    QgsProcessingParameterFolderDestination, QgsProcessingParameterRasterDestination,
)

from ...core import params as P
from ...core.job_settings import ChainSettings
from ..layer_styles import SRLayerStyler, UncertaintyLayerStyler, result_title
from .. import recent_outputs as recent
from .base import StackSRAlgorithm


class SuperResolveChain(StackSRAlgorithm):
    ICON = "chain"
    STEPS, SEED, WORK_FOLDER = "STEPS", "SEED", "WORK_FOLDER"
    OUTPUT, OUTPUT_UNCERTAINTY, OUTPUT_REPORT = "OUTPUT", "OUTPUT_UNCERTAINTY", "OUTPUT_REPORT"

    def name(self):
        return "superresolvechain"

    def displayName(self):  # noqa: N802
        return "0 - Super-resolve a time series (estimate kernels, fine-tune, super-resolve)"

    def shortDescription(self):  # noqa: N802 - the toolbox's tooltip
        return ("The whole method in one click: kernels, self-supervised fine-tuning of the base model, then PIUNet + "
                "TTF or IBP, whichever validates best on the series.")

    def shortHelpString(self):  # noqa: N802
        return (
            "Runs the three steps of the method on one time series, with their defaults: 1 - estimates the blur "
            "kernel of every image (joint DIP-FKP), 2 - fine-tunes the base model shipped with the plugin "
            "self-supervised on the series with those kernels (no high-resolution image needed), 3 - super-resolves "
            "the series with the method its own validation chooses: PIUNet with test-time finetuning (the fine-tuned "
            "model), IBP with the estimated kernels or the default PSF, their blend, or the reference image alone (as "
            "the Super-resolve algorithm's Automatic method; the log, the report and the raster's metadata say which "
            "and how well it validated). Images whose registration quality is too low are left out (see the log).\n\n"
            "The kernel bank and the model are kept in the work folder (a temporary one by default), to be reused "
            "with the single-step algorithms. On 2 CPU cores a series of 8 images of 61 x 61 px takes about 1.5 "
            "minutes at the default 300 fine-tuning steps."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_stack_parameters()
        self.add_scale_parameter()
        self.addParameter(self.number(self.STEPS, "Fine-tuning steps", P.CHAIN_STEPS))
        self.add_device_parameter()
        self.add(self.number(self.SEED, "Random seed", P.SEED), advanced=True)
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.WORK_FOLDER, "Work folder (kernel bank and model)", optional=True, createByDefault=True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Super-resolved raster"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_UNCERTAINTY, "Uncertainty (standard deviation)", optional=True, createByDefault=False))
        self.add_report(self.OUTPUT_REPORT, "Run report")

    def run_job(self, parameters, context, feedback, monitor):
        from ...core.jobs.chain_job import run_chain  # torch is imported only when running

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        unc = self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context) or None
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        folder = self.parameterAsFileOutput(parameters, self.WORK_FOLDER, context)
        os.makedirs(folder, exist_ok=True)
        settings = ChainSettings(
            output, folder, scale=self.parameterAsInt(parameters, self.SCALE, context),
            steps=self.parameterAsInt(parameters, self.STEPS, context), device=self.device_choice(parameters, context),
            seed=self.parameterAsInt(parameters, self.SEED, context), uncertainty_output=unc, report_html=report,
            invalid_mask_values=self.invalid_mask_values(parameters, context))
        summary = run_chain(self.stack_sources(parameters, context), settings, monitor)
        title = result_title(summary)
        stamp = f"{output}#{uuid.uuid4().hex}"  # one run's layers, told apart from a rerun's
        self.load_as(context, output, title, SRLayerStyler, run_stamp=stamp)
        self.load_as(context, summary["uncertainty"], f"{title} uncertainty", UncertaintyLayerStyler, run_stamp=stamp)
        recent.remember(recent.KERNEL_BANK, summary["kernel_bank"])  # reusable by the single steps' dialogs
        recent.remember(recent.MODEL, summary["model"])
        results = {self.OUTPUT: output, self.WORK_FOLDER: folder}
        if summary["uncertainty"]:
            results[self.OUTPUT_UNCERTAINTY] = summary["uncertainty"]
        if summary["report"]:
            results[self.OUTPUT_REPORT] = summary["report"]
        return results
