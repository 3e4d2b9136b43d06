"""Real frozen encoders from local folders: random-init timm DINOv2 and open_clip CLIP saved in their
upstream key format as safetensors, loaded through gen3d, outputs equal to the upstream models'."""

from __future__ import annotations

import json

import pytest
import torch

timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from safetensors.torch import save_file  # noqa: E402

from gen3d.stages.shape_dit.encoders import FrozenImageEncoders, load_clip_visual, load_dinov2  # noqa: E402
from gen3d.utils.checkpoint import CheckpointError  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    dino = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, img_size=224).eval()
    (root / "dino").mkdir()
    save_file({k: v.contiguous() for k, v in dino.state_dict().items()}, str(root / "dino" / "model.safetensors"))
    (root / "dino" / "config.json").write_text(json.dumps({"architecture": "vit_small_patch14_dinov2.lvd142m",
                                                           "img_size": 224}))
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    (root / "clip").mkdir()
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(root / "clip" / "model.safetensors"))
    (root / "clip" / "config.json").write_text(json.dumps({"model_name": "ViT-B-32"}))
    return root, dino, clip


def test_loaded_encoders_reproduce_the_upstream_models(folders):
    root, dino, clip = folders
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(load_dinov2(root / "dino").forward_features(x), dino.forward_features(x))
        loaded = load_clip_visual(root / "clip")
        assert torch.equal(loaded(x), clip.visual(x))


def test_frozen_conditions_are_the_hidden_states_direct3d_uses(folders):
    root, dino, clip = folders
    encoders = FrozenImageEncoders(load_dinov2(root / "dino"), load_clip_visual(root / "clip"))
    images = torch.rand(2, 3, 256, 256)
    cond = encoders(images)
    assert cond["pixel"].shape == (2, 257, 384) and cond["semantic"].shape == (2, 50, 768)
    assert torch.equal(cond["semantic_cls"], cond["semantic"][:, 0])
    x = torch.nn.functional.interpolate(images, size=(224, 224), mode="bicubic", align_corners=False)
    clip_in = (x - encoders.clip_mean) / encoders.clip_std
    clip.visual.output_tokens = True
    with torch.no_grad():
        _, tokens = clip.visual(clip_in)  # open_clip: patch tokens after ln_post
    clip.visual.output_tokens = False
    assert torch.allclose(clip.visual.ln_post(cond["semantic"])[:, 1:], tokens, atol=1e-5)
    assert not any(p.requires_grad for p in encoders.parameters())


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="config.json and model.safetensors"):
        load_dinov2(tmp_path)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="architecture"):
        load_dinov2(tmp_path)
    with pytest.raises(CheckpointError, match="model_name"):
        load_clip_visual(tmp_path)
