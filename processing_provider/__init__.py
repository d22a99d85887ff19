"""Thin QGIS Processing layer: translates parameters, feedback and cancellation to core jobs."""
