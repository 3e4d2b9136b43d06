"""The shared diffusion core: schedules, the denoiser contract, samplers."""
