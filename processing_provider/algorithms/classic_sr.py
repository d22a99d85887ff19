"""Algorithm: classic multi-frame super-resolution (mean of bicubic / IBP)."""
import uuid

from qgis.core import (
    QgsProcessingParameterBoolean, QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
)

from ...core import params as P
from ...core.job_settings import SuperResolveSettings
from ...core.choices import CLASSIC_METHOD_DEFAULT, CLASSIC_METHOD_LABELS, CLASSIC_METHODS
from ..layer_styles import SRLayerStyler, result_title
from .. import recent_outputs as recent
from .base import StackSRAlgorithm


class ClassicSuperResolve(StackSRAlgorithm):
    ICON = "classic"
    METHOD, ITERATIONS, PSF_SIGMA, REGISTER, OUTPUT = "METHOD", "ITERATIONS", "PSF_SIGMA", "REGISTER", "OUTPUT"
    KERNEL_BANK = "KERNEL_BANK"

    def name(self):
        return "superresolveclassic"

    def displayName(self):  # noqa: N802
        return "Super-resolve (classic: bicubic / IBP)"

    def shortDescription(self):  # noqa: N802 - the toolbox's tooltip
        return "Super-resolves a time series with a classic multi-frame method (IBP or the mean of bicubic), as a baseline."

    def shortHelpString(self):  # noqa: N802
        return (
            "Super-resolves a time series of co-registered low-resolution images of the same place with a "
            "classic multi-frame method, as a baseline for the deep-learning tools.\n\n"
            "Frames are registered to a reference frame with sub-pixel accuracy, then either averaged after "
            "bicubic upsampling (bicubic) or refined by Irani-Peleg iterative back-projection (IBP) with an "
            "assumed Gaussian blur, or with each image's own kernel from a kernel bank ('Estimate degradation "
            "kernels' on the same images). Images whose registration quality is too low (another land cover, "
            "or not alignable) are left out and listed in the log. IBP's iteration count is chosen per stack "
            "by default: a tenth of the pixels is held out of one run, and the count that predicts them best "
            "is used (frames cut from one image want many iterations, real dates that disagree few). "
            "Where a date shows other land than the reference date (a mowed field, a new crop, an undetected "
            "cloud), IBP gives its pixels less weight: the reference date is the one asked for.\n\n"
            "Input: several single-band rasters on one grid, or one multiband raster whose bands are dates. "
            "Nodata, NaN and the values listed for the optional quality masks (Landsat fmask cloud, shadow, "
            "snow, fill by default) are ignored.\n\n"
            "Output: a float32 GeoTIFF with the input CRS and origin and the pixel size divided by the scale; "
            "pixels that no valid input covers are nodata."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_stack_parameters()
        self.add_scale_parameter()
        self.add_reference_parameter(legacy=-1)
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, "Method", options=list(CLASSIC_METHOD_LABELS.values()),
            defaultValue=CLASSIC_METHODS.index(CLASSIC_METHOD_DEFAULT)))
        self.add_earlier_output(self.KERNEL_BANK, "Kernel bank for IBP (.npz; empty: a Gaussian blur)", "npz",
                                recent.KERNEL_BANK)
        advanced = [
            self.number(self.ITERATIONS, "IBP iterations (empty: chosen per stack by held-out validation)", P.IBP_ITERATIONS),
            self.number(self.PSF_SIGMA, "IBP blur sigma in output pixels (empty: the default for the scale)", P.PSF_SIGMA,
                        legacy=0.0),
            QgsProcessingParameterBoolean(self.REGISTER, "Register frames (sub-pixel)", True),
        ]
        for p in advanced:
            self.add(p, advanced=True)
        self.add_registration_quality_parameter()
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Super-resolved raster"))

    def run_job(self, parameters, context, feedback, monitor):
        from ...core.jobs.sr_job import run_superresolve  # torch is imported only when running

        sources = self.stack_sources(parameters, context)
        reference = self.optional_number(parameters, self.REFERENCE, context, legacy=-1)
        sigma = self.optional_number(parameters, self.PSF_SIGMA, context, legacy=0.0)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        settings = SuperResolveSettings(
            output, scale=self.parameterAsInt(parameters, self.SCALE, context),
            method=CLASSIC_METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
            reference=reference,
            iterations=self.optional_number(parameters, self.ITERATIONS, context),
            psf_sigma=sigma,
            kernel_bank=self.parameterAsFile(parameters, self.KERNEL_BANK, context) or None,
            register=self.parameterAsBool(parameters, self.REGISTER, context),
            min_registration_quality=self.optional_number(parameters, self.MIN_REGISTRATION_QUALITY, context),
            invalid_mask_values=self.invalid_mask_values(parameters, context))
        summary = run_superresolve(sources, settings, monitor)
        feedback.pushInfo(f"Reference frame: {summary['reference']}; {summary['images_used']} of {summary['images']} "
                          f"images used; {summary['seconds']} s")
        stamp = f"{output}#{uuid.uuid4().hex}"  # one run's layers, told apart from a rerun's
        self.load_as(context, output, result_title(summary), SRLayerStyler, run_stamp=stamp)
        return {self.OUTPUT: output}
