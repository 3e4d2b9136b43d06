"""Small shared helpers (image files)."""
