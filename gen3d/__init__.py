"""gen3d: images and text to production 3D assets, and raw 3D folders to training data."""

__version__ = "0.1.0"
