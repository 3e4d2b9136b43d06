"""Curation of noisy 3D data (DIRECT-3D): quality filters, duplicate detection, pose alignment and
the dataset-preparation job that writes training data."""
