"""Rendering: cameras, rasterizer backends (pure torch by default, GL via moderngl/EGL), shaders."""
