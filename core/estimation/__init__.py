"""Kernel estimation (DIP-FKP) and its calibration, on registered stacks."""
