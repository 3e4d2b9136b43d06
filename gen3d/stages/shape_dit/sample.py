"""Loading the image-conditioned DiT and sampling triplane latents through the diffusion core
(any sampler by name, classifier-free guidance with zeroed conditions, one seed per image)."""

from __future__ import annotations

from pathlib import Path

import torch

from gen3d.diffusion.denoisers import ClassifierFreeGuidance, VPDenoiser
from gen3d.diffusion.sampling import sample
from gen3d.diffusion.schedules import DiscreteVP
from gen3d.stages.shape_dit.encoders import TinyEncoderConfig, TinyImageEncoder
from gen3d.stages.shape_dit.model import MODEL_TYPE, D3DDiT, DiTConfig, ImageConditionedDiT, null_condition
from gen3d.utils.checkpoint import load_into, load_pretrained
from gen3d.utils.config import from_dict


class LatentSampler:
    """A loaded DiT with its schedule and latent normalization: images -> VAE latents."""

    def __init__(self, net: ImageConditionedDiT, config: dict):
        self.net = net.eval()
        self.schedule = DiscreteVP.make(config["schedule"])
        self.prediction = net.dit.config.prediction
        self.shift, self.scale = float(config["latent_shift"]), float(config["latent_scale"])
        self.image_size = net.encoder.config.image_size

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> LatentSampler:
        state, meta = load_pretrained(folder, MODEL_TYPE)
        config = meta["config"]
        net = ImageConditionedDiT(TinyImageEncoder(from_dict(TinyEncoderConfig, config["encoder"], where="encoder")),
                                  D3DDiT(from_dict(DiTConfig, config["dit"], where="dit")))
        load_into(net, state, str(folder))
        return cls(net.to(device), config)

    def sigmas(self, steps: int) -> torch.Tensor:
        """Descending sigmas for `steps` steps, trailing spacing from t = T - 1, ending at 0."""
        return self.schedule.sigmas_for_timesteps(self.schedule.timesteps(steps, "trailing")).float()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, seeds: list[int], *, sampler: str = "dpmpp_2m", steps: int = 20,
                 guidance: float = 3.0, callback=None) -> torch.Tensor:
        """(B, 3, S, S) images in [0, 1] -> (B, d_z, r, 3r) latents in the VAE's scale."""
        device = next(self.net.parameters()).device
        cond = self.net.encoder(images.to(device))
        dit = self.net.dit
        denoiser = VPDenoiser(lambda x, t, c: dit(x, t, c), self.prediction, self.schedule.sigma_to_t)
        if guidance != 1.0:
            denoiser = ClassifierFreeGuidance(denoiser, guidance, null_condition(cond))
        sigmas = self.sigmas(steps).to(device)
        shape = (dit.config.latent_channels, dit.config.plane_res, 3 * dit.config.plane_res)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        x = noise.to(device) * float((1 + sigmas[0] ** 2).sqrt())  # VE x_T
        generator = torch.Generator(device).manual_seed(seeds[0])
        x0 = sample(sampler, denoiser, x, sigmas, cond=cond, generator=generator, callback=callback)
        return x0 / self.scale + self.shift
