"""Layers shared by gen3d models (attention blocks, embeddings)."""
