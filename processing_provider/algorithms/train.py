"""Algorithm: train PIUNet self-supervised on the user's LR time series."""
import os
import time

from qgis.core import (
    QgsProcessingOutputNumber, QgsProcessingParameterBoolean,
    QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
)

from ...core import params as P
from ...core.job_settings import TrainSettings
from ...core.progress import Cancelled
from .. import recent_outputs as recent
from .base import StackSRAlgorithm



class TrainSelfSupervised(StackSRAlgorithm):
    ICON = "train"
    KERNEL_BANK, STEPS, PATCH, BATCH, FRAMES, SEED, RESUME, OUTPUT_MODEL = (
        "KERNEL_BANK", "STEPS", "PATCH", "BATCH", "FRAMES", "SEED", "RESUME", "OUTPUT_MODEL")
    OUTPUT_REPORT = "OUTPUT_REPORT"
    FROM_BASE, INIT_MODEL, LEARNING_RATE = "FROM_BASE", "INIT_MODEL", "LEARNING_RATE"
    BEST_VAL, STEPS_DONE = "BEST_VAL", "STEPS_DONE"

    def name(self):
        return "trainselfsupervised"

    def displayName(self):  # noqa: N802
        return "2 - Train super-resolution model (self-supervised)"

    def shortDescription(self):  # noqa: N802 - the toolbox's tooltip
        return "Trains (fine-tunes) PIUNet on the time series itself, without any high-resolution image."

    def shortHelpString(self):  # noqa: N802
        return (
            "Trains PIUNet on the time series itself, without any high-resolution image: each training sample "
            "degrades the low-resolution (LR) images to a coarser resolution with kernels drawn at random from the "
            "kernel bank (a different one per image), and the network learns to recover one LR image from that "
            "coarse stack. The bottom rows of the stack are kept for validation.\n\n"
            "Kernel bank: the output of '1 - Estimate degradation kernels'; when empty, kernels are estimated first "
            "(joint mode).\n\n"
            "By default training fine-tunes the base model shipped with the plugin (trained self-supervised on a "
            "real Landsat time series), which needs far fewer steps than a new network; untick 'Start from the "
            "shipped base model' to train from scratch, or give another model to fine-tune.\n\n"
            "Writes the model with the best validation loss (when fine-tuning, the starting model competes: where no "
            "step validates better, the output is the model it started from), and '<model>.last', a checkpoint to "
            "resume from; "
            "cancelling saves that checkpoint. Runs in the background; progress shows the loss of every step."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_stack_parameters()
        self.add_earlier_output(self.KERNEL_BANK, "Kernel bank (empty: estimate first)", "npz", recent.KERNEL_BANK)
        self.add_scale_parameter()
        self.addParameter(QgsProcessingParameterBoolean(self.FROM_BASE, "Start from the shipped base model", True))
        self.addParameter(self.number(self.STEPS, "Training steps", P.STEPS))
        self.add_device_parameter()
        advanced = [
            self.number(self.PATCH, "Training patch size (empty: automatic; each target is this size x the scale, in input "
                        "pixels)", P.PATCH, legacy=0),
            self.number(self.LEARNING_RATE, f"Learning rate (empty: {P.TRAIN_LR_FINETUNE:g} fine-tuning, "
                        f"{P.TRAIN_LR_SCRATCH:g} from scratch)", P.TRAIN_LR, legacy=0.0),
            self.number(self.BATCH, "Batch size", P.BATCH),
            self.number(self.FRAMES, "Frames per sample (T)", P.FRAMES),
            self.number(self.SEED, "Random seed", P.SEED),
            QgsProcessingParameterFile(self.RESUME, "Resume from checkpoint (<model>.last)", extension="last", optional=True),
            QgsProcessingParameterFile(self.INIT_MODEL, "Fine-tune this model instead of the base model (.pt)",
                                       extension="pt", optional=True),
        ]
        for p in advanced:
            self.add(p, advanced=True)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, "Trained model", "StackSR PIUNet model (*.pt)"))
        self.add_report(self.OUTPUT_REPORT, "Training report")
        self.addOutput(QgsProcessingOutputNumber(self.BEST_VAL, "Best validation loss"))
        self.addOutput(QgsProcessingOutputNumber(self.STEPS_DONE, "Steps trained"))

    def run_job(self, parameters, context, feedback, monitor):
        from ...core.jobs.job_reports import kept_step
        from ...core.jobs.train_job import run_train_self_supervised  # torch is imported only when running

        output = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        started = time.time()
        try:
            settings = TrainSettings(
                output, self.parameterAsFile(parameters, self.KERNEL_BANK, context) or None,
                scale=self.parameterAsInt(parameters, self.SCALE, context),
                steps=self.parameterAsInt(parameters, self.STEPS, context),
                lr=self.optional_number(parameters, self.LEARNING_RATE, context, legacy=0.0),
                patch=self.optional_number(parameters, self.PATCH, context, legacy=0),
                batch=self.parameterAsInt(parameters, self.BATCH, context),
                frames=self.parameterAsInt(parameters, self.FRAMES, context),
                device=self.device_choice(parameters, context),
                seed=self.parameterAsInt(parameters, self.SEED, context),
                resume=self.parameterAsFile(parameters, self.RESUME, context) or None,
                invalid_mask_values=self.invalid_mask_values(parameters, context), report_html=report,
                from_base=self.parameterAsBoolean(parameters, self.FROM_BASE, context),
                init_model=self.parameterAsFile(parameters, self.INIT_MODEL, context) or None)
            res = run_train_self_supervised([self.stack_sources(parameters, context)], settings, monitor)
        except Cancelled:
            last = f"{output}.last"
            if os.path.exists(last) and os.path.getmtime(last) >= started - 1:  # this run's checkpoint, not an old one
                feedback.reportError(f"Cancelled: the checkpoint {last} was written; to continue, give it as "
                                     "'Resume training from checkpoint'")
                return {}
            raise  # nothing of this run was written, and the base says so
        feedback.pushInfo(f"Trained {res['steps']} steps in {res['seconds']} s; best validation loss {res['best_val']:.4f}, "
                          f"kept {kept_step(res)}")
        recent.remember(recent.MODEL, output)  # step 3's dialog offers it
        results = {self.OUTPUT_MODEL: output, self.BEST_VAL: res["best_val"], self.STEPS_DONE: res["steps"]}
        if report:
            results[self.OUTPUT_REPORT] = report
        return results
