"""D3D-DiT: the image-conditioned diffusion transformer over triplane latents (Direct3D)."""
