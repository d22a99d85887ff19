"""Architecture rules: core/ imports no QGIS or Qt; metadata is consistent."""
import ast
import configparser
import glob
import os

from conftest import ROOT


def test_core_never_imports_qgis_or_qt():
    for path in glob.glob(os.path.join(ROOT, "core", "**", "*.py"), recursive=True):
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.split(".")[0] in {"qgis", "PyQt5", "PyQt6", "processing"}, f"{path} imports {n}"


def test_metadata_declares_processing_provider_and_version():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "metadata.txt"))
    general = cfg["general"]
    assert general["hasProcessingProvider"] == "yes"
    from stacksr.core import __version__

    assert general["version"] == __version__
    for key in ("name", "qgisMinimumVersion", "description", "about", "author", "email", "repository"):
        assert general.get(key)
