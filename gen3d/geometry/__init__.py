"""Geometry layer: mesh I/O, validation, normalization, cleanup, sampling, fields and metrics."""
