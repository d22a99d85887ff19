"""The shipped Graphical Modeler model (estimate kernels -> train -> super-resolve), run headless."""
import importlib.util
import os

from osgeo import gdal

from conftest import ROOT

MODEL3 = os.path.join(ROOT, "examples", "stacksr_chain.model3")


def _load_shipped():
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(MODEL3), MODEL3
    return model


def test_shipped_model_is_what_the_builder_script_writes(qgis_app):
    spec = importlib.util.spec_from_file_location("build_example_model", os.path.join(ROOT, "scripts", "build_example_model.py"))
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built, shipped = builder.build(), _load_shipped()
    assert sorted(built.childAlgorithms()) == sorted(shipped.childAlgorithms())
    assert sorted(p.name() for p in built.parameterDefinitions()) == sorted(p.name() for p in shipped.parameterDefinitions())
    for cid in built.childAlgorithms():
        a, b = built.childAlgorithm(cid), shipped.childAlgorithm(cid)
        assert a.algorithmId() == b.algorithmId()
        assert {k: [s.toVariant() for s in v] for k, v in a.parameterSources().items()} == \
               {k: [s.toVariant() for s in v] for k, v in b.parameterSources().items()}


def test_in_the_modeler_every_box_fits_its_label_and_each_step_shows_its_own_icon(qgis_app):
    """The shipped model in the Modeler's own scene: boxes were QGIS's default 200 x 30 px and clipped the two-line
    labels, the outputs showed raw names (kernel_bank), the steps a generic gear."""
    from qgis.gui import QgsModelGraphicsScene
    from qgis.PyQt.QtGui import QFontMetricsF

    model = _load_shipped()
    for cid in model.childAlgorithms():
        child = model.childAlgorithm(cid)
        assert child.size().width() >= 260 and child.size().height() >= 50
        assert os.path.exists(child.algorithm().svgIconPath()), cid  # the step's own icon, not the gear
        for name, out in child.modelOutputs().items():
            assert " " in name and name[0].isupper() and out.size().width() >= 200
    for name in model.parameterComponents():
        assert model.parameterComponent(name).size().width() >= 260
    scene = QgsModelGraphicsScene()
    scene.setModel(model)
    from qgis.core import QgsProcessingContext

    scene.createItems(model, QgsProcessingContext())
    for item in scene.items():
        item.setSelected(True)
    items = scene.selectedComponentItems()
    assert len(items) == 11  # 5 inputs, 3 steps, 3 outputs
    for item in items:  # two lines of the box's text width (an icon and margins aside) hold every label
        metrics = QFontMetricsF(item.font())
        assert metrics.horizontalAdvance(item.label()) < 2 * (item.component().size().width() - 60), item.label()
        assert item.component().size().height() >= 2.5 * metrics.height(), item.label()


def test_shipped_model_chains_kernel_estimation_training_and_superresolution(qgis_app, sample_images, sample_masks,
                                                                             tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    model = _load_shipped()
    ok, errors = model.validate()
    assert ok, errors
    dest = sorted(p.name() for p in model.destinationParameterDefinitions())
    assert dest == ["kernels:Kernel bank", "sr:Super-resolved raster", "train:Trained model"]
    out = str(tmp_path / "chain_sr.tif")
    res = processing.run(model, {
        "stack": sample_images, "masks": sample_masks, "kernel_iterations": 20, "train_steps": 2, "ttf_iterations": 3,
        "sr:Super-resolved raster": out, "train:Trained model": str(tmp_path / "model.pt"),
        "kernels:Kernel bank": str(tmp_path / "bank.npz"),
    }, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    assert res["sr:Super-resolved raster"] == out and os.path.exists(out)
    assert os.path.exists(tmp_path / "model.pt") and os.path.exists(tmp_path / "bank.npz")
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (183, 183) and ds.GetMetadataItem("STACKSR_METHOD") == "piunet+ttf"
    ds = None


def test_a_model_saved_before_the_ttf_fit_parameter_existed_still_validates(qgis_app):
    from qgis.core import QgsProcessingModelAlgorithm

    saved = _load_shipped().toVariant()  # the shipped model as it is stored, minus the newer parameter
    steps = [c for c in saved["children"].values() if "TTF_FIT" in c["params"]]
    assert len(steps) == 1
    del steps[0]["params"]["TTF_FIT"]
    old = QgsProcessingModelAlgorithm()
    assert old.loadVariant(saved)
    ok, errors = old.validate()
    assert ok, errors


def test_every_algorithm_opens_its_own_shipped_help_page_and_it_is_up_to_date(qgis_app):
    """help/<algorithm>.html: what scripts/build_help.py writes from the definitions (every parameter,
    the outputs, a typical runtime); the Help button opens it."""
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QUrl

    spec = importlib.util.spec_from_file_location("build_help", os.path.join(ROOT, "scripts", "build_help.py"))
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    pages = builder.build()
    algs = [a for a in QgsApplication.processingRegistry().algorithms() if a.provider().id() == "stacksr"]
    assert sorted(pages) == sorted(f"{a.name()}.html" for a in algs)
    for alg in algs:
        path = QUrl(alg.helpUrl()).toLocalFile()
        assert os.path.basename(path) == f"{alg.name()}.html"
        with open(path, encoding="utf-8") as fh:
            assert fh.read() == pages[f"{alg.name()}.html"], f"run `make help-pages` ({alg.name()})"
        assert "Typical runtime" in pages[f"{alg.name()}.html"]
        assert all(f"<code>{p.name()}</code>" in pages[f"{alg.name()}.html"] for p in alg.parameterDefinitions())


def test_readme_shows_a_screenshot_of_every_dialog_the_viewer_every_report_the_modeler_and_the_map(qgis_app):
    import re

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    linked = set(re.findall(r"\(docs/([\w.-]+\.png)\)", readme))
    from qgis.core import QgsApplication

    expected = {f"dialog_{alg.name()}.png" for alg in QgsApplication.processingRegistry().providerById("stacksr").algorithms()} | {
        "kernel_viewer.png", "report_kernels.png", "report_training.png", "report_superresolution.png",
        "modeler_stacksr_chain.png", "map_result_on_inputs.png", "map_kernel_footprints.png"}
    assert expected <= linked, expected - linked
    assert all(os.path.getsize(os.path.join(ROOT, "docs", name)) > 10_000 for name in linked)
