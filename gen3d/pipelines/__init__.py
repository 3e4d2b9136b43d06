"""Pipelines: short chains of stage calls (image -> 3D; text -> 3D later)."""
