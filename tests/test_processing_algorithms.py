"""The StackSR algorithms through processing.run in a real QgsApplication."""
import json
import os

import numpy as np
import pytest
from osgeo import gdal

from conftest import ROOT
from stacksr.core.job_settings import KernelSettings


def test_provider_lists_algorithms(qgis_app):
    from qgis.core import QgsApplication

    algs = QgsApplication.processingRegistry().providerById("stacksr").algorithms()
    ids = {a.id() for a in algs}
    assert {"stacksr:superresolveclassic", "stacksr:score"} <= ids
    # the shipped Graphical Modeler model is in the toolbox too, after the numbered steps
    model = QgsApplication.processingRegistry().algorithmById("stacksr:stacksr_chain")
    assert model is not None and model.displayName().startswith("4 - ") and len(model.childAlgorithms()) == 3
    assert model.createInstance().displayName() == model.displayName()


def test_every_algorithm_has_help_an_icon_and_modeler_safe_parameters(qgis_app):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QUrl

    algs = [a for a in QgsApplication.processingRegistry().providerById("stacksr").algorithms() if a.name() != "stacksr_chain"]
    assert len(algs) == 6
    icons = {alg.ICON for alg in algs}  # each step of the workflow its own icon
    assert len(icons) == 6 and all(os.path.exists(os.path.join(ROOT, "icons", f"{i}.svg")) for i in icons)
    for alg in algs:
        assert len(alg.shortHelpString()) > 80, alg.id()
        assert os.path.exists(QUrl(alg.helpUrl()).toLocalFile()), alg.helpUrl()
        assert not alg.icon().isNull(), alg.id()
        assert alg.createInstance() is not alg and alg.createInstance().name() == alg.name()
        for p in alg.parameterDefinitions():
            assert " " not in p.name() and p.description(), (alg.id(), p.name())


def test_a_two_row_batch_with_reports_ends_without_an_error(qgis_app, sample_images, tmp_path):
    """QGIS's batch dialog passes every HTML output to the Results Viewer without the timestamp it requires: every
    batch run of a StackSR algorithm (reports are on by default) ended in a Python error bar, an empty "layers were
    not correctly generated" and the progress stuck. Reports are plain file outputs, still written by default; a real
    two-row batch through QGIS's own dialog runs to its end."""
    import subprocess
    import sys

    from qgis.core import QgsApplication, QgsProcessingOutputFile, QgsProcessingOutputHtml

    algs = [a for a in QgsApplication.processingRegistry().providerById("stacksr").algorithms() if a.name() != "stacksr_chain"]
    with_report = [a for a in algs if a.parameterDefinition("OUTPUT_REPORT") is not None]
    assert len(with_report) == 4
    for alg in algs:
        assert not any(isinstance(o, QgsProcessingOutputHtml) for o in alg.outputDefinitions()), alg.id()
    for alg in with_report:
        assert isinstance(alg.outputDefinition("OUTPUT_REPORT"), QgsProcessingOutputFile)
        assert alg.parameterDefinition("OUTPUT_REPORT").createByDefault()
    # in a process of its own: the dialog's objects hang pytest's teardown after a batch run
    script = tmp_path / "batch.py"
    script.write_text(BATCH_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.pathsep.join([os.path.join(ROOT, ".build", "pkg"),
                                                                     "/usr/share/qgis/python"]))
    res = subprocess.run([sys.executable, str(script), str(out), *sample_images[:4]], capture_output=True, text=True,
                         env=env, timeout=300)
    assert "batch ended" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["report0.html", "report1.html", "sr0.tif", "sr1.tif"]


BATCH_SCRIPT = """
import os, sys
sys.path.append("/usr/share/qgis/python/plugins")
from qgis.core import QgsApplication
app = QgsApplication([], True)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from stacksr.processing_provider.provider import StackSRProvider
provider = StackSRProvider()
QgsApplication.processingRegistry().addProvider(provider)
from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
from processing.tools import dataobjects
out, images = sys.argv[1], sys.argv[2:]
dialog = BatchAlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById("stacksr:superresolve"))
panel = dialog.mainWidget()
panel.addRow()
context = dataobjects.createContext()
for row in range(2):
    panel.wrappers[row][panel.parameter_to_column["LAYERS"]].setParameterValue(images[row:row + 3], context)
    panel.wrappers[row][panel.parameter_to_column["METHOD"]].setParameterValue(3, context)  # bicubic: quick
    for name, file in (("OUTPUT", f"sr{row}.tif"), ("OUTPUT_REPORT", f"report{row}.html")):
        panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column[name]).setValue(os.path.join(out, file))
dialog.runAlgorithm()  # raised TypeError in the Results Viewer after the last row
print("batch ended", flush=True)
os._exit(0)
"""


def test_classic_sr_from_layers_with_masks(processing, sample_images, sample_masks, tmp_path):
    out = str(tmp_path / "ibp.tif")
    res = processing.run("stacksr:superresolveclassic", {
        "LAYERS": sample_images, "MASKS": sample_masks, "SCALE": 3, "METHOD": 1, "ITERATIONS": 10, "OUTPUT": out})
    assert res["OUTPUT"] == out
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (183, 183)
    assert ds.GetMetadataItem("STACKSR_METHOD") == "ibp"
    ds = None


def test_classic_sr_from_multiband_with_band_list(processing, sample_images, tmp_path):
    vrt = str(tmp_path / "stack.vrt")
    ds = gdal.BuildVRT(vrt, sample_images, separate=True)
    ds = None
    out = str(tmp_path / "bic.tif")
    processing.run("stacksr:superresolveclassic", {
        "MULTIBAND": vrt, "BANDS": [2, 3, 4, 5], "SCALE": 2, "METHOD": 0, "OUTPUT": out})
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (122, 122)
    assert ds.GetGeoTransform()[1] == 15.0
    import json

    assert len(json.loads(ds.GetMetadataItem("STACKSR_INPUTS"))) == 4
    ds = None


def test_bad_input_raises_processing_exception_and_writes_nothing(processing, sample_images, tmp_path):
    from qgis.core import QgsProcessingException

    out = tmp_path / "bad.tif"
    with pytest.raises(QgsProcessingException, match="at least 2 images"):
        processing.run("stacksr:superresolveclassic", {"LAYERS": sample_images[:1], "OUTPUT": str(out)})
    with pytest.raises(QgsProcessingException, match="No input"):
        processing.run("stacksr:superresolveclassic", {"OUTPUT": str(out)})
    assert not out.exists() and os.listdir(tmp_path) == []


def test_cancel_stops_ibp_and_leaves_no_output(qgis_app, sample_images, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

    class CancelDuringIBP(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p > 30:
                self.cancel()

    alg = QgsApplication.processingRegistry().createAlgorithmById("stacksr:superresolveclassic")
    out = tmp_path / "cancelled.tif"
    context, feedback = QgsProcessingContext(), CancelDuringIBP()
    params = {"LAYERS": sample_images, "SCALE": 3, "METHOD": 1, "ITERATIONS": 200, "OUTPUT": str(out)}
    ok = alg.prepare(params, context, feedback)
    assert ok
    results = alg.runPrepared(params, context, feedback)
    assert feedback.isCanceled() and results == {}
    assert not out.exists() and os.listdir(tmp_path) == []


def test_score_algorithm(processing, tmp_path):
    from conftest import L8_CROP

    noisy = str(tmp_path / "noisy.tif")
    ds = gdal.Open(L8_CROP)
    arr = ds.ReadAsArray().astype(np.float32)
    out = gdal.GetDriverByName("GTiff").Create(noisy, ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Float32)
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    rng = np.random.default_rng(0)
    out.GetRasterBand(1).WriteArray(arr + 100 + rng.normal(0, 65.535, arr.shape).astype(np.float32))
    out = None
    ds = None
    res = processing.run("stacksr:score", {"SR": noisy, "REFERENCE": L8_CROP, "OUTPUT_JSON": str(tmp_path / "s.json")})
    # noise of 1/1000 of the uint16 range -> 60 dB; the +100 bias is removed by cPSNR only
    assert res["CPSNR"] == pytest.approx(60.0, abs=0.2)
    assert res["PSNR"] < res["CPSNR"] - 3
    assert os.path.exists(res["OUTPUT_JSON"])


def test_estimate_kernels_loads_styled_kernel_layers_in_a_group(qgis_app, sample_images, sample_masks, tmp_path):
    import processing as proc
    from qgis.core import QgsProject, QgsSingleBandPseudoColorRenderer

    from stacksr.core.io.kernel_bank import KernelBank

    project = QgsProject.instance()
    project.clear()
    project.layerTreeRoot().insertGroup(0, "StackSR")  # results of an earlier run: kernels must not cover them
    params = {"LAYERS": sample_images[:4], "MASKS": sample_masks[:4], "SCALE": 3, "MODE": 1, "ITERATIONS": 40,
              "OUTPUT_BANK": str(tmp_path / "bank.npz"), "OUTPUT_LAYERS": str(tmp_path / "kernels"),
              "OUTPUT_REPORT": str(tmp_path / "kernels.html")}
    res = proc.runAndLoadResults("stacksr:estimatekernels", params)
    bank = KernelBank.load(res["OUTPUT_BANK"], scale=3, size=15)
    assert bank.names == [os.path.basename(p) for p in sample_images[:4]]
    assert len(res["KERNEL_LAYERS"]) == 4 and os.path.exists(res["OUTPUT_REPORT"])
    group = project.layerTreeRoot().findGroup("Kernels")
    assert group is not None and len(group.findLayers()) == 4
    # one footprint, four kernels: only the first shows (the others would hide it and each other)
    assert [n.itemVisibilityChecked() for n in group.findLayers()] == [True, False, False, False]
    assert [g.name() for g in project.layerTreeRoot().children()][:2] == ["StackSR", "Kernels"]
    for node in group.findLayers():
        layer = node.layer()
        assert layer.isValid() and isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
        assert layer.resampleFilter().zoomedInResampler() is None  # nearest neighbour: kernel pixels stay crisp
        # one colour scale for the run: 0 to the bank's largest weight
        renderer = layer.renderer()
        assert (renderer.classificationMin(), renderer.classificationMax()) == pytest.approx((0.0, float(bank.kernels.max())))
    project.clear()


def test_estimate_kernels_refuses_a_prior_of_another_scale(processing, sample_images, tmp_path):
    from qgis.core import QgsProcessingException

    from stacksr.core.degradation.fkp import default_fkp_path

    with pytest.raises(QgsProcessingException, match="scale x3, not x2"):
        processing.run("stacksr:estimatekernels", {
            "LAYERS": sample_images[:2], "SCALE": 2, "PRIOR": default_fkp_path(3),
            "OUTPUT_BANK": str(tmp_path / "b.npz")})
    assert not os.path.exists(tmp_path / "b.npz")


def test_estimate_kernels_refuses_a_kernel_size_the_prior_does_not_have(processing, sample_images, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="15x15 kernels, not 21x21"):
        processing.run("stacksr:estimatekernels", {
            "LAYERS": sample_images[:2], "SCALE": 3, "KERNEL_SIZE": 21, "OUTPUT_BANK": str(tmp_path / "b.npz")})
    assert not os.path.exists(tmp_path / "b.npz")



def test_train_self_supervised_writes_a_loadable_model_and_a_report(processing, sample_images, sample_masks,
                                                                    sample_bank, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingOutputFile

    from stacksr.core.learned.model_files import load_model

    out = str(tmp_path / "model.pt")
    res = processing.run("stacksr:trainselfsupervised", {
        "LAYERS": sample_images, "MASKS": sample_masks, "KERNEL_BANK": sample_bank, "SCALE": 3, "STEPS": 4,
        "BATCH": 2, "OUTPUT_MODEL": out, "OUTPUT_REPORT": "TEMPORARY_OUTPUT"})
    assert res["STEPS_DONE"] == 4 and os.path.exists(out) and os.path.exists(out + ".last")
    net, payload = load_model(out, scale=3)
    assert payload["train"]["patch"] == 10  # auto: the 61-px stack leaves room for validation
    # the report is created by default, as a plain file output (an HTML output breaks QGIS's batch dialog)
    alg = QgsApplication.processingRegistry().algorithmById("stacksr:trainselfsupervised")
    assert isinstance(alg.outputDefinition("OUTPUT_REPORT"), QgsProcessingOutputFile)
    page = open(res["OUTPUT_REPORT"], encoding="utf-8").read()
    assert "Loss" in page and "<polyline" in page and "Kernel bank" in page and "model.pt" in page
    # plain setting names, every step's loss on the curve, the date, version and inputs
    assert "noise added to the inputs" in page and "noise_aug" not in page and "learning rate" in page
    assert "UTC, StackSR" in page and os.path.basename(sample_images[0]) in page


def test_cancelled_training_leaves_a_resumable_checkpoint(qgis_app, sample_images, sample_bank, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

    from stacksr.core.learned.model_files import load_model

    class CancelAfterTwoSteps(QgsProcessingFeedback):
        def setProgress(self, p):  # noqa: N802
            super().setProgress(p)
            if p >= 2 / 50 * 100:
                self.cancel()

    alg = QgsApplication.processingRegistry().createAlgorithmById("stacksr:trainselfsupervised")
    out = str(tmp_path / "m.pt")
    params = {"LAYERS": sample_images, "KERNEL_BANK": sample_bank, "STEPS": 50, "BATCH": 2, "OUTPUT_MODEL": out}
    class Messages(CancelAfterTwoSteps):
        errors: list = []

        def reportError(self, error, fatalError=False):  # noqa: N802
            self.errors.append(error)
            super().reportError(error, fatalError)

    context, feedback = QgsProcessingContext(), Messages()
    assert alg.prepare(params, context, feedback)
    assert alg.runPrepared(params, context, feedback) == {}
    _, payload = load_model(out + ".last")
    assert 2 <= payload["state"]["step"] < 50 and "optimizer" in payload
    # one message, the true one: the checkpoint exists and says how to continue (not also "no output was written")
    assert feedback.errors == [f"Cancelled: the checkpoint {out}.last was written; to continue, give it as "
                               "'Resume training from checkpoint'"]

    class CancelAtOnce(Messages):
        errors: list = []

        def isCanceled(self):  # noqa: N802 - before the first step: nothing is written
            return True

    out2 = str(tmp_path / "m2.pt")
    params2 = {**params, "OUTPUT_MODEL": out2}
    feedback = CancelAtOnce()
    assert alg.prepare(params2, context, feedback)
    assert alg.runPrepared(params2, context, feedback) == {}
    assert not os.path.exists(out2 + ".last") and feedback.errors == ["Cancelled: no output was written."]


def test_superresolve_with_ttf_writes_sr_uncertainty_and_kernel_layer(processing, sample_images, sample_masks,
                                                                      sample_bank, tmp_path):
    from stacksr.core.io.kernel_bank import fit_gaussian

    model = str(tmp_path / "model.pt")
    processing.run("stacksr:trainselfsupervised", {
        "LAYERS": sample_images, "MASKS": sample_masks, "KERNEL_BANK": sample_bank, "STEPS": 2, "BATCH": 2,
        "OUTPUT_MODEL": model})
    out, unc, ker = (str(tmp_path / n) for n in ("sr.tif", "std.tif", "kernel.tif"))
    from qgis.core import QgsProject, QgsSingleBandGrayRenderer, QgsSingleBandPseudoColorRenderer

    project = QgsProject.instance()
    project.clear()
    res = processing.runAndLoadResults("stacksr:superresolve", {
        "LAYERS": sample_images, "MASKS": sample_masks, "MODEL": model, "METHOD": 0, "TTF_ITERATIONS": 5,
        "TTF_FIT": 1, "TILE": 40, "OUTPUT": out, "OUTPUT_UNCERTAINTY": unc, "OUTPUT_KERNEL": ker,
        "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert res["OUTPUT"] == out and res["OUTPUT_UNCERTAINTY"] == unc and res["OUTPUT_KERNEL"] == ker
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (183, 183) and ds.GetMetadataItem("STACKSR_METHOD") == "piunet+ttf"
    assert '"ttf_fit": "reference"' in ds.GetMetadataItem("STACKSR_PARAMETERS")  # the advanced choice, as published
    assert np.isfinite(ds.ReadAsArray()).all()
    ds = gdal.Open(ker)
    k = ds.ReadAsArray()
    ds = None
    assert k.shape == (15, 15) and abs(k.sum() - 1) < 1e-4 and fit_gaussian(k, 3).sigma1 > 0
    # loaded with styles: grey SR, pseudocolor uncertainty, pseudocolor TTF kernel, all three in the StackSR group
    layers = {os.path.basename(lyr.source()): lyr for lyr in project.mapLayers().values()}
    assert isinstance(layers["sr.tif"].renderer(), QgsSingleBandGrayRenderer)
    assert isinstance(layers["std.tif"].renderer(), QgsSingleBandPseudoColorRenderer)
    # the uncertainty as the report shows it: Magma from 0 to its 98th percentile
    std = gdal.Open(unc).ReadAsArray()
    top = float(np.percentile(std[np.isfinite(std)], 98))
    shader = layers["std.tif"].renderer()
    assert shader.classificationMin() == 0.0 and abs(shader.classificationMax() - top) < 0.1 * top
    assert isinstance(layers[os.path.basename(ker)].renderer(),
                      QgsSingleBandPseudoColorRenderer)
    # results in the StackSR group (not in the active Kernels group), named after date, method and scale
    results = {n.layer().name(): os.path.basename(n.layer().source())
               for n in project.layerTreeRoot().findGroup("StackSR").findLayers()}
    ref = os.path.basename(sample_images[0]).rsplit(".", 1)[0]
    assert any(name.endswith("piunet+ttf x3") and src == "sr.tif" for name, src in results.items()), results
    assert any(name.endswith("piunet+ttf x3 uncertainty") and src == "std.tif" for name, src in results.items())
    assert any(name.endswith("piunet+ttf x3 TTF kernel") and src == os.path.basename(ker) for name, src in results.items())
    assert all(name.split(" ")[0].endswith("_b4") for name in results) and ref.endswith("_b4")
    project.clear()
    page = open(res["OUTPUT_REPORT"], encoding="utf-8").read()
    for part in ("Test-time finetuning loss", "<polyline", "TTF kernel", "Consistency with the reference frame",
                 "piunet+ttf", "Reference date, result and uncertainty", "linearGradient", "StackSR 0.", "UTC"):
        assert part in page, part
    assert page.count('alt="quicklook"') == 3  # the reference date as input, the result, its uncertainty
    assert "rgb(0, 0, 4)" in page and f">{top:.3g}</text>" in page  # the Magma ramp, up to the same value as the map
    assert f"<td>model</td><td>{model}</td>" in page  # which model made the result


def test_superresolve_refuses_a_file_that_is_not_a_model(processing, sample_images, tmp_path):
    from qgis.core import QgsProcessingException

    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"\x80\x04not a model")
    with pytest.raises(QgsProcessingException, match="not a StackSR model"):
        processing.run("stacksr:superresolve", {"LAYERS": sample_images, "MODEL": str(fake), "METHOD": 1,
                                                "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_classic_ibp_takes_a_kernel_bank_and_reports_left_out_images(processing, sample_images, tmp_path):
    from stacksr.core.jobs.kernel_job import run_estimate_kernels
    from stacksr.core.io.stack_io import ImageSource

    bank = str(tmp_path / "bank.npz")
    run_estimate_kernels([ImageSource(p) for p in sample_images[:3]], KernelSettings(bank, scale=3, mode="joint",
                         iterations=3))
    out = str(tmp_path / "sr.tif")
    res = processing.run("stacksr:superresolveclassic", {"LAYERS": sample_images[:3], "SCALE": 3, "METHOD": 1,
                                                         "ITERATIONS": 5, "KERNEL_BANK": bank, "OUTPUT": out})
    ds = gdal.Open(res["OUTPUT"])
    meta = json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))
    reg = json.loads(ds.GetMetadataItem("STACKSR_REGISTRATION"))
    ds = None
    assert meta["kernel_bank"] == "bank.npz" and meta["min_registration_quality"] == 0.9
    assert set(reg) == {os.path.basename(p) for p in sample_images[:3]}


def test_score_refuses_a_raster_scored_against_itself(processing, sample_images):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="the SR raster and the reference are the same file"):
        processing.run("stacksr:score", {"SR": sample_images[0], "REFERENCE": sample_images[0]})


@pytest.mark.parametrize("alg", ["superresolveclassic", "estimatekernels", "trainselfsupervised", "superresolve",
                                 "superresolvechain"])
def test_every_stack_algorithm_refuses_a_missing_input_before_running_and_shows_no_placeholders(processing, alg, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext

    algorithm = QgsApplication.processingRegistry().algorithmById(f"stacksr:{alg}")
    outputs = {"OUTPUT": str(tmp_path / "x.tif"), "OUTPUT_BANK": str(tmp_path / "k.npz"), "OUTPUT_MODEL": str(tmp_path / "m.pt")}
    ok, message = algorithm.checkParameterValues(outputs, QgsProcessingContext())
    assert not ok and message.startswith("No input")
    # "automatic" settings are empty in the dialog, not 0 / -1 placeholders
    for p in algorithm.parameterDefinitions():
        if p.type() == "number" and p.defaultValue() is not None:
            assert p.defaultValue() >= 0 and not (p.defaultValue() == 0 and p.name() not in ("SEED", "TILE")), p.name()


def test_the_old_placeholder_values_still_mean_automatic(processing, sample_images, tmp_path):
    """Saved models and scripts from before (REFERENCE -1, PSF_SIGMA 0) keep running as they did."""
    out = str(tmp_path / "sr.tif")
    processing.run("stacksr:superresolveclassic", {"LAYERS": sample_images[:3], "METHOD": 1, "ITERATIONS": 3,
                                                   "REFERENCE": -1, "PSF_SIGMA": 0, "OUTPUT": out})
    ds = gdal.Open(out)
    params = json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))
    ds = None
    assert params["psf_sigma"] is None


def test_the_toolbox_lists_the_workflow_in_order_with_a_tooltip_each(processing):
    from qgis.core import QgsApplication

    algs = [a for a in QgsApplication.processingRegistry().algorithms() if a.provider().id() == "stacksr"]
    workflow = sorted(a.displayName() for a in algs if a.group() == "Super-resolution")
    assert [n.split(" ")[0] for n in workflow[:4]] == ["0", "1", "2", "3"]
    assert [a.id() for a in sorted(algs, key=lambda a: a.displayName())][:4] == [
        "stacksr:superresolvechain", "stacksr:estimatekernels", "stacksr:trainselfsupervised", "stacksr:superresolve"]
    assert all(a.shortDescription() for a in algs)


@pytest.mark.slow
def test_the_one_click_chain_estimates_fine_tunes_and_super_resolves(processing, sample_images, tmp_path):
    from qgis.core import QgsProject

    project = QgsProject.instance()
    project.clear()
    out, work = str(tmp_path / "sr.tif"), str(tmp_path / "work")
    res = processing.runAndLoadResults("stacksr:superresolvechain", {
        "LAYERS": sample_images[:3], "SCALE": 3, "STEPS": 2, "WORK_FOLDER": work, "OUTPUT": out,
        "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert res["OUTPUT"] == out and sorted(os.listdir(work)) == ["kernels.npz", "piunet.pt", "piunet.pt.last"]
    ds = gdal.Open(out)
    method = ds.GetMetadataItem("STACKSR_METHOD")
    params = json.loads(ds.GetMetadataItem("STACKSR_PARAMETERS"))
    validation = json.loads(ds.GetMetadataItem("STACKSR_VALIDATION"))
    # IBP with the default PSF and with the estimated kernels on held-out pixels, the fine-tuned model one scale down
    assert method in ("piunet+ttf", "ibp", "blend", "bicubic-ref") and validation["chosen"] == method
    assert (ds.RasterXSize, ds.RasterYSize) == (183, 183)
    assert {"ibp", "ibp-bank", "bicubic-ref"} <= set(validation["methods"])
    assert set(validation["one_scale_down"]) == {"piunet+ttf", "blend", "ibp", "bicubic", "bicubic-ref"}
    assert params["requested_method"] == "auto" and params["model"] == "piunet.pt"
    # the report covers the whole job: its three steps, their seconds and the total
    page = open(str(tmp_path / "report.html"), encoding="utf-8").read()
    for part in ("step 1/3</td><td>kernel estimation", "step 2/3</td><td>fine-tuning the shipped base model, 2 steps",
                 "step 3/3</td><td>super-resolution", "seconds, whole job", "<td>model</td>"):
        assert part in page, part
    ds = None
    names = [n.layer().name() for n in project.layerTreeRoot().findGroup("StackSR").findLayers()]
    assert len(names) == 1 and names[0].endswith(f"{method} x3")
    project.clear()


def test_parameters_and_cli_speak_of_input_and_output_pixels_only(qgis_app):
    """One pixel vocabulary: the input images' pixels and the result's pixels (no LR / HR / coarse)."""
    import re
    import subprocess
    import sys

    from qgis.core import QgsApplication

    other = re.compile(r"\b(LR|HR|CR|coarse|low-resolution|high-resolution) (pixel|px)", re.IGNORECASE)
    provider = QgsApplication.processingRegistry().providerById("stacksr")
    texts = [p.description() + " " + p.help() for alg in provider.algorithms() for p in alg.parameterDefinitions()]
    assert any("input pixels" in t for t in texts) and any("output pixels" in t for t in texts)
    for command in ("sr", "classic", "kernels", "train", "chain"):
        texts.append(subprocess.run([sys.executable, "-m", "stacksr", command, "--help"], capture_output=True,
                                    text=True, check=True).stdout)
    assert [t for t in texts if other.search(t)] == []


def test_a_rerun_lands_on_top_with_its_kernel_above_its_result_above_its_uncertainty(processing, sample_images, tmp_path):
    """New results are what the map shows: each run's layers on top of the StackSR group, the TTF kernel (a small
    footprint) above the result, the uncertainty under it (it covered the result)."""
    from qgis.core import QgsProject

    project = QgsProject.instance()
    project.clear()
    for run in (1, 2):
        processing.runAndLoadResults("stacksr:superresolve", {
            "LAYERS": sample_images[1:5], "METHOD": 0, "TTF_ITERATIONS": 2, "OUTPUT": str(tmp_path / f"sr{run}.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / f"std{run}.tif"), "OUTPUT_KERNEL": str(tmp_path / f"k{run}.tif")})
    group = project.layerTreeRoot().findGroup("StackSR")
    sources = [os.path.basename(n.layer().source()) for n in group.findLayers()]
    assert sources == ["k2.tif", "sr2.tif", "std2.tif", "k1.tif", "sr1.tif", "std1.tif"], sources
    project.clear()
