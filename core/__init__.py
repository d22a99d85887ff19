"""StackSR core engine: pure PyTorch/NumPy/GDAL code, no QGIS or Qt imports.

Usable from the QGIS Processing provider, the CLI (``python -m stacksr``) and
plain Python alike.
"""
__version__ = "0.1.0"
