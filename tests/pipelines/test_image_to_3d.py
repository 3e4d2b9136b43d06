"""Image -> 3D on a micro random model: seeded latents (a batch equals single calls), the CLI's file and
folder outputs, GLB metadata, and bad images failing alone with their reason codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from gen3d import cli
from gen3d.geometry.fields import grid_points, marching_cubes
from gen3d.pipelines.image_to_3d import ImageTo3D
from gen3d.stages.shape_dit.sample import LatentSampler
from gen3d.types import Mesh
from tests.micro_models import write_micro_model


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    vae = dict(width=32, heads=2, encoder_layers=1, plane_res=4, latent_channels=4, decoder_channels=(16, 8),
               triplane_channels=8)
    return write_micro_model(tmp_path_factory.mktemp("model"), vae, {"steps": 4, "resolution": 32})


def _image(path, centre=(40, 60), colour=(230, 120, 20)):
    yy, xx = np.mgrid[:128, :128]
    rgb = np.zeros((128, 128, 3), np.uint8)
    rgb[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= 30**2] = colour
    Image.fromarray(rgb).save(path)
    return path


def test_latents_are_seeded_and_a_batch_equals_single_calls(micro_model):
    sampler = LatentSampler.from_pretrained(micro_model / "dit")
    images = torch.rand(2, 3, 64, 64)
    batch = sampler(images, [7, 7], steps=4, guidance=3.0)
    one = sampler(images[:1], [7], steps=4, guidance=3.0)
    two = sampler(images[1:], [7], steps=4, guidance=3.0)
    assert batch.shape == (2, 4, 4, 12)
    assert torch.allclose(batch, torch.cat([one, two]), atol=1e-5)
    assert not torch.allclose(sampler(images[:1], [8], steps=4), one)
    assert not torch.allclose(one, two)  # the image matters
    assert torch.equal(sampler(images[:1], [7], steps=4, guidance=3.0), one)


STAND_IN_GRID = 128  # nodes per side of the carved stand-in sphere's field


class SphereLatents:
    """Stands in for DecodedLatents: every extraction is a sphere; `calls` records what was asked."""

    calls: list = []

    def __init__(self, vae, z):
        self.z = z
        sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
        self.sphere = Mesh(vertices=sphere.vertices, faces=sphere.faces)

    def sample_meshes(self):
        SphereLatents.calls.append(("samples", self.z.clone(), None))
        return [self.sphere] * len(self.z)

    def to_mesh(self, resolution, rotations=None, keep=None):
        SphereLatents.calls.append((resolution, self.z.clone(), rotations))
        if keep is None:
            return self.sphere, None
        points = grid_points(STAND_IN_GRID)  # (G^3, 3): the sphere's field, carved where `keep` says
        values = np.where(keep(points), 0.4 - np.linalg.norm(points, axis=1), -1.0)
        return marching_cubes(values.reshape((STAND_IN_GRID,) * 3), inside="positive"), None


@pytest.fixture
def sphere_decoder(monkeypatch):
    """The random micro VAE has no surface to extract: stand in a sphere for the decoded field, which
    keeps the CLI, the budget, the frame and the writers under test."""
    SphereLatents.calls = []
    monkeypatch.setattr("gen3d.pipelines.image_to_3d.DecodedLatents", SphereLatents)
    return SphereLatents.calls


def test_generate_one_image_to_a_file_with_metadata(tmp_path, micro_model, sphere_decoder, capsys):
    image = _image(tmp_path / "cup.png")
    out = tmp_path / "cup.glb"
    code = cli.main(["generate", str(image), "-o", str(out), "--model", str(micro_model), "--seed", "3",
                     "--faces", "200", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["ok"] and payload["seed"] == 3 and payload["steps"] == 4
    scene = trimesh.load(out)
    mesh = next(iter(scene.geometry.values())) if isinstance(scene, trimesh.Scene) else scene
    assert len(mesh.faces) <= 200 and np.isclose(np.ptp(mesh.vertices, axis=0).max(), 1.9, atol=1e-3)
    gltf = json.loads(out.read_bytes()[20: 20 + int.from_bytes(out.read_bytes()[12:16], "little")])
    assert gltf["asset"]["extras"]["seed"] == 3 and gltf["asset"]["extras"]["model_id"] == "micro-test"


def test_generate_folder_keeps_going_past_a_bad_image(tmp_path, micro_model, sphere_decoder, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _image(folder / "a.png")
    _image(folder / "b.png", centre=(70, 70))
    (folder / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (16, 16)).save(folder / "tiny.png")
    code = cli.main(["generate", str(folder), "-o", str(tmp_path / "out"), "--model", str(micro_model),
                     "--format", "obj", "--json"])
    payload = json.loads(capsys.readouterr().out)
    reasons = {r["image"].split("/")[-1]: r.get("reason") for r in payload["results"]}
    assert code == 2 and not payload["ok"]
    assert reasons == {"a.png": None, "b.png": None, "broken.png": "image_unreadable", "tiny.png": "image_too_small"}
    assert sorted(p.name for p in (tmp_path / "out").glob("*.obj")) == ["a.obj", "b.obj"]


def test_a_single_bad_image_is_one_line_on_stderr(tmp_path, micro_model, capsys):
    """CONVENTIONS: exit 2 with one line naming the reason (not the batch's per-image line as well)."""
    (tmp_path / "broken.png").write_bytes(b"not a png")
    code = cli.main(["generate", str(tmp_path / "broken.png"), "-o", str(tmp_path / "x.glb"), "--model",
                     str(micro_model)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "image_unreadable" in lines[0]


def test_missing_model_folder_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["generate", str(_image(tmp_path / "x.png")), "-o", str(tmp_path / "x.glb"),
                     "--model", str(tmp_path / "nothing"), "--json"])
    assert code == 2 and json.loads(capsys.readouterr().out)["reason"] == "bad_checkpoint"


@pytest.mark.parametrize("section, key", [("condition_views", "elevations"), ("defaults", "cfg_scale"),
                                          ("defaults", "carve"), (None, "not valid JSON")])
def test_a_malformed_pipeline_spec_is_a_clear_error(tmp_path, micro_model, capsys, section, key):
    """Unknown keys in either section of pipeline.json, or a file that is not JSON: bad_checkpoint, named."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(micro_model, folder)
    spec = json.loads((folder / "pipeline.json").read_text())
    assert spec["condition_views"]["azimuths"] == [0.0, 90.0, 180.0, 270.0]
    if section is None:
        (folder / "pipeline.json").write_text(json.dumps(spec)[:-5])  # cut short
    else:
        spec[section][key] = "bogus"  # an unknown key, or a value out of the choices
        (folder / "pipeline.json").write_text(json.dumps(spec))
    code = cli.main(["generate", str(_image(tmp_path / "x.png")), "-o", str(tmp_path / "x.glb"),
                     "--model", str(folder), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 2 and payload["reason"] == "bad_checkpoint" and key in payload["message"]


def test_pipeline_api_run(micro_model, sphere_decoder, tmp_path):
    pipeline = ImageTo3D.from_pretrained(micro_model)
    mesh = pipeline.run(Image.open(_image(tmp_path / "c.png")), seed=1, faces=100)
    assert mesh.num_faces <= 100


def test_samples_are_consecutive_seeds_and_a_batch_equals_single_calls(micro_model, sphere_decoder, tmp_path):
    """--samples N hands to_mesh the latents of seeds S..S+N-1 (as N single-seed calls make them) per image."""
    def extracted():  # latents of the final extractions since the last call (not the per-sample meshes)
        out = [z for what, z, _ in sphere_decoder if what != "samples"]
        sphere_decoder.clear()
        return out

    pipeline = ImageTo3D.from_pretrained(micro_model)
    images = [Image.open(_image(tmp_path / "a.png")), Image.open(_image(tmp_path / "b.png", centre=(70, 70)))]
    pipeline.run_batch(images, seed=5, samples=3)
    batch = extracted()
    assert [z.shape for z in batch] == [(3, 4, 4, 12)] * 2
    for image in images:
        pipeline.run(image, seed=5, samples=3)
    assert all(torch.allclose(b, s, atol=1e-5) for b, s in zip(batch, extracted()))
    for k in range(3):
        pipeline.run(images[1], seed=5 + k)
    assert torch.allclose(batch[1], torch.cat(extracted()), atol=1e-5)
    assert not torch.allclose(batch[1][0], batch[1][1])
    with pytest.raises(ValueError, match="samples"):
        pipeline.run(images[0], samples=0)


def test_generate_samples_flag(tmp_path, micro_model, sphere_decoder, capsys):
    image = _image(tmp_path / "cup.png")
    code = cli.main(["generate", str(image), "-o", str(tmp_path / "cup.glb"), "--model", str(micro_model),
                     "--samples", "2", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["samples"] == 2


@pytest.mark.parametrize("flag, value, says", [("--samples", "0", "samples must be >= 1"),
                                               ("--steps", "0", "steps must be >= 1"),
                                               ("--faces", "2", "faces must be >= 4"),
                                               ("--resolution", "4", "resolution must be >= 8"),
                                               ("--sampler", "bogus", "sampler must be one of"),
                                               ("--sampler", "dpm_solver_v3", "sampler must be one of")])
def test_generate_settings_out_of_range_are_usage_errors(tmp_path, micro_model, capsys, flag, value, says):
    """Checked before any image is read: exit 2 with the setting named, not an internal error."""
    code = cli.main(["generate", str(_image(tmp_path / "cup.png")), "-o", str(tmp_path / "cup.glb"),
                     "--model", str(micro_model), flag, value])
    assert code == 2 and says in capsys.readouterr().err and not (tmp_path / "cup.glb").exists()


def test_front_orientation_turns_each_sample_before_they_are_combined(micro_model, sphere_decoder, monkeypatch,
                                                                     tmp_path):
    """orient="front": each sample's coarse surface chooses its turn; the final extraction gets the turns."""
    from gen3d.stages.shape_dit.orient import turn_matrix

    turns = iter([90.0, 0.0, 270.0])
    monkeypatch.setattr("gen3d.pipelines.image_to_3d.front_turn", lambda mesh, mask, views: next(turns))
    pipeline = ImageTo3D.from_pretrained(micro_model)
    image = Image.open(_image(tmp_path / "a.png"))
    pipeline.run(image, samples=3, orient="front")
    assert [(call[0], len(call[1])) for call in sphere_decoder] == [("samples", 3), (32, 3)]
    assert np.allclose(sphere_decoder[-1][2], np.stack([turn_matrix(90), np.eye(3), turn_matrix(270)]))
    sphere_decoder.clear()
    pipeline.run(image, samples=3, orient="none")
    assert [(call[0], len(call[1]), call[2]) for call in sphere_decoder] == [(32, 3, None)]
    with pytest.raises(ValueError, match="orient"):
        pipeline.run(image, orient="sideways")


@pytest.mark.parametrize("setting,values", [("orient", ("none", "front")), ("width", ("model", "fit")),
                                            ("carve", ("none", "silhouette"))])
def test_generate_setting_flags_reach_the_output_metadata(tmp_path, micro_model, sphere_decoder, capsys, setting,
                                                          values):
    image = _image(tmp_path / "cup.png")
    for value in values:
        code = cli.main(["generate", str(image), "-o", str(tmp_path / "cup.glb"), "--model", str(micro_model),
                         f"--{setting}", value, "--json"])
        assert code == 0 and json.loads(capsys.readouterr().out)[setting] == value


def test_cli_orient_and_width_choices_are_the_pipelines():
    """The CLI lists the orientations and width settings itself (importing the pipeline to build the
    parser would load torch for every command): they must stay those the pipeline accepts."""
    from gen3d import cli_args
    from gen3d.pipelines.image_to_3d import CARVINGS, ORIENTATIONS, WIDTHS

    assert (cli_args.ORIENT_CHOICES, cli_args.WIDTH_CHOICES, cli_args.CARVE_CHOICES) == (ORIENTATIONS, WIDTHS, CARVINGS)
    parser = cli_args.build_parser()
    for orient in ORIENTATIONS:  # the parser takes its choices from that list
        assert parser.parse_args(["generate", "a.png", "-o", "a.glb", "--orient", orient]).orient == orient
    for width in WIDTHS:
        assert parser.parse_args(["generate", "a.png", "-o", "a.glb", "--width", width]).width == width
    with pytest.raises(cli.UsageError, match="invalid choice: 'back'"):
        parser.parse_args(["generate", "a.png", "-o", "a.glb", "--orient", "back"])
    with pytest.raises(cli.UsageError, match="invalid choice: 'wide'"):
        parser.parse_args(["generate", "a.png", "-o", "a.glb", "--width", "wide"])


def test_width_fit_gives_the_output_the_pictures_silhouette_ratio(micro_model, sphere_decoder, tmp_path):
    """width="fit": the decoded sphere, seen from the front camera, takes the ratio of a 2:1 ellipse in the
    picture (measured on the output by an independent render); "model" keeps the sphere round."""
    from gen3d.stages.shape_dit.orient import ConditionViews
    from gen3d.stages.shape_dit.proportion import front_aspect

    yy, xx = np.mgrid[:120, :200]
    rgb = np.zeros((120, 200, 3), np.uint8)
    rgb[((yy - 60) / 30.0) ** 2 + ((xx - 100) / 60.0) ** 2 <= 1.0] = (230, 120, 20)  # 121 x 61 px
    picture = Image.fromarray(rgb)
    pipeline = ImageTo3D.from_pretrained(micro_model)
    fitted = pipeline.run(picture, width="fit", faces=5000)
    seen = front_aspect(fitted, ConditionViews(resolution=512))
    assert seen == pytest.approx(121 / 61, rel=0.03)
    assert np.ptp(fitted.vertices, axis=0) == pytest.approx([1.9, 0.95, 0.95], rel=0.05)
    kept = pipeline.run(picture, width="model", faces=5000)
    assert np.ptp(kept.vertices, axis=0) == pytest.approx([1.9, 1.9, 1.9], rel=0.01)
    assert pipeline.metadata(0, width="fit")["width"] == "fit"
    with pytest.raises(ValueError, match="width"):
        pipeline.run(picture, width="wide")



def test_silhouette_carving_removes_what_the_picture_does_not_show(micro_model, sphere_decoder):
    """carve="silhouette": the decoded sphere against a picture of a disc with a slot cut from its centre to
    its right edge; seen from the front camera (an independent render of the output), the carved output
    leaves the slot almost empty and matches the picture better, and nothing else is lost."""
    from dataclasses import replace

    from scipy import ndimage

    from gen3d.stages.shape_dit.orient import ConditionViews, silhouettes
    from gen3d.stages.shape_dit.preprocess import prepare_image
    from gen3d.stages.shape_dit.silhouette import TOLERANCE_PX

    yy, xx = np.mgrid[:160, :160]
    rgb = np.zeros((160, 160, 3), np.uint8)
    rgb[(yy - 80) ** 2 + (xx - 80) ** 2 <= 50**2] = (230, 120, 20)
    rgb[(np.abs(yy - 80) <= 8) & (xx > 90)] = 0  # the slot
    picture = Image.fromarray(rgb)
    front = replace(ConditionViews(), azimuths=(0.0,))
    target = prepare_image(picture, front.resolution).mask > 0.5  # (256, 256)
    pipeline = ImageTo3D.from_pretrained(micro_model)
    seen = {}
    for carve in ("none", "silhouette"):
        mesh = pipeline.run(picture, orient="none", width="model", carve=carve, faces=20000)
        seen[carve] = silhouettes(mesh, front, front.resolution)[0]  # (256, 256)
    # pixels farther from the picture's foreground than the carving's tolerance plus one cell of the
    # stand-in's grid as the output shows it (the sphere of radius 0.4 normalized to 0.95 across the crop's
    # 205 px for 1.9 units) and a pixel for the rasterization
    cell = 2.0 / (STAND_IN_GRID - 1) * (0.95 / 0.4) * (0.8 * front.resolution / 1.9)  # ~4 px
    far = ndimage.distance_transform_edt(~target) > TOLERANCE_PX + cell + 1.0
    outside = {k: int((v & far).sum()) for k, v in seen.items()}
    iou = {k: (v & target).sum() / (v | target).sum() for k, v in seen.items()}
    assert outside["none"] > 1500  # the slot: ~35 x 70 px of the 256 px crop
    assert outside["silhouette"] < 0.05 * outside["none"], outside
    assert iou["silhouette"] > iou["none"] + 0.03 and iou["silhouette"] > 0.94, iou
    assert pipeline.metadata(0, carve="silhouette")["carve"] == "silhouette"
    with pytest.raises(ValueError, match="carve"):
        pipeline.run(picture, carve="hull")


def test_bundled_generation_defaults_are_the_recipes():
    """gen3d/weights/tiny/pipeline.json is written by the recipe's export stage from TINY_DEFAULTS; a
    default changed in one place only would make the recipe no longer reproduce the committed model."""
    import importlib.util
    from pathlib import Path

    from gen3d.pipelines.image_to_3d import BUNDLED, GenerationSettings

    path = Path(__file__).resolve().parents[2] / "tools" / "recipe_tiny.py"
    spec = importlib.util.spec_from_file_location("recipe_tiny", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    committed = json.loads((BUNDLED / "pipeline.json").read_text())["defaults"]
    assert committed == {**GenerationSettings().__dict__, **recipe.TINY_DEFAULTS}
