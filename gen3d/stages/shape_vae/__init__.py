"""D3D-VAE: triplane shape autoencoder (Direct3D) and its mesh extraction."""
