"""The `gen3d` command line's arguments: every command's parser (no torch import: `--help` stays fast)."""

from __future__ import annotations

import argparse

import gen3d

# the image_to_3d pipeline's ORIENTATIONS, WIDTHS and CARVINGS, listed here so that building the parser does not
# load torch
ORIENT_CHOICES = ("front", "none")
WIDTH_CHOICES = ("fit", "model")
CARVE_CHOICES = ("silhouette", "none")


class UsageError(Exception):
    """Bad command-line usage: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints and exits 2 itself; route it through main()
        raise UsageError(f"{self.prog}: {message}")


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    g = parser.add_argument_group("global options")
    g.add_argument("--threads", type=int, default=default, metavar="N",
                   help="threads for torch, libigl and pools (default: cores / workers)")
    g.add_argument("--device", choices=["cpu", "cuda", "auto"], default=argparse.SUPPRESS if suppress else "auto",
                   help="compute device (default: auto)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="only errors on stderr")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="print exactly one JSON object on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gen3d", description="Images and text to 3D assets; raw 3D folders to training data.")
    parser.add_argument("--version", action="version", version=f"gen3d {gen3d.__version__}")
    _global_options(parser, suppress=False)
    common = _Parser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", parents=[common], help="load, validate and describe a mesh file")
    p.add_argument("path", help="mesh file (.obj .ply .stl .off .glb .gltf)")

    p = sub.add_parser("convert", parents=[common], help="convert a mesh, optionally to a face budget")
    p.add_argument("input", help="mesh file to read")
    p.add_argument("output", help="file to write (.glb .obj .ply .stl)")
    p.add_argument("--faces", type=int, metavar="N", help="simplify to at most N faces (drops UV textures)")
    p.add_argument("--normalize", action="store_true", help="centre and scale to the canonical frame")

    p = sub.add_parser("render", parents=[common], help="render views of a mesh (rgb, normal, depth, mask)")
    p.add_argument("mesh", help="mesh file to render")
    p.add_argument("--out", required=True, help="output folder for the view files and cameras.json")
    p.add_argument("--views", type=int, default=4, help="number of views (default: 4, azimuths evenly spaced)")
    p.add_argument("--res", type=int, default=512, help="image width and height in pixels (default: 512)")
    p.add_argument("--elev", type=float, nargs="+", help="elevation(s) in degrees (default: 20)")
    p.add_argument("--azim", type=float, nargs="+", help="azimuth(s) in degrees (default: 0, 360/N, ...)")
    p.add_argument("--radius", type=float, default=2.5, help="camera distance (default: 2.5)")
    p.add_argument("--fov", type=float, default=40.0, help="vertical field of view in degrees (default: 40)")
    p.add_argument("--texture", help="diffuse map for a UV-mapped mesh whose material names none")
    p.add_argument("--no-normalize", action="store_true", help="render the mesh as loaded (no canonical frame)")
    p.add_argument("--backend", choices=["auto", "torch", "gl"], default="auto", help="rasterizer (default: auto)")

    sub.add_parser("doctor", parents=[common], help="report versions, devices and optional backends")

    data = sub.add_parser("data", help="dataset jobs")
    data_sub = data.add_subparsers(dest="data_command", metavar="JOB", parser_class=_Parser)
    p = data_sub.add_parser("procedural", parents=[common], help="write seeded procedural shapes")
    p.add_argument("out", help="output folder")
    p.add_argument("--families", nargs="+", default=None, help="families to cycle through (default: all)")
    p.add_argument("--count", type=int, default=12, help="number of shapes in total (default: 12)")
    p.add_argument("--seed", type=int, default=0, help="first seed within the split's range (default: 0)")
    p.add_argument("--split", choices=["train", "val"], default="train",
                   help="train or val: disjoint seed ranges (default: train)")
    p.add_argument("--format", choices=["obj", "ply", "glb", "stl"], default="obj", help="file format (default: obj)")
    p = data_sub.add_parser("prepare", parents=[common],
                            help="filter, pose-align and normalize raw assets into training data (resumable)")
    p.add_argument("src", help="folder of raw assets (searched recursively) or a .txt list of files")
    p.add_argument("out", help="output folder (one folder per accepted asset, manifest.jsonl, summary.json)")
    p.add_argument("--config", default=None, help="YAML config (filters, output, pose, seed); default values otherwise")
    p.add_argument("--workers", type=int, default=1, help="parallel workers (default: 1)")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="local process pool or Ray")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--limit", type=int, default=None, help="only the first N inputs (sorted by path)")
    p.add_argument("--timeout-per-asset", type=float, default=600.0, metavar="S",
                   help="seconds before an asset is stopped and marked failed/timeout (default: 600)")
    p.add_argument("--memory-per-asset", type=int, default=8192, metavar="MB",
                   help="memory guard per worker beyond its start-up size, 0 = none (default: 8192)")
    p.add_argument("--max-faces", type=int, default=None, help="reject inputs with more faces (overrides the config)")
    p.add_argument("--render-views", type=int, default=None, help="views rendered per asset (overrides the config)")
    p.add_argument("--render-res", type=int, default=None, help="render resolution (overrides the config)")
    p.add_argument("--force", action="store_true", help="redo everything, also when the config changed")

    train = sub.add_parser("train", help="train a model (resumable; torchrun for several processes)")
    train_sub = train.add_subparsers(dest="train_command", metavar="MODEL", parser_class=_Parser)
    for model, what in (("vae", "the shape VAE"), ("dit", "the image-conditioned shape DiT (needs views)")):
        p = train_sub.add_parser(model, parents=[common], help=f"train {what} on prepared data")
        p.add_argument("--config", default=None, help=f"YAML: preset, overrides, train (configs/{model}/tiny.yaml)")
        p.add_argument("--data", required=True, nargs="+", metavar="FOLDER",
                       help="`gen3d data prepare` output folder(s) (their train split is used)"
                       + (", or one training pack (`gen3d train pack`)" if model == "dit" else ""))
        p.add_argument("--val-data", default=None, help="prepared folder for validation (default: --data's val split)")
        p.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
        p.add_argument("--steps", type=int, default=None, help="override train.steps")
        p.add_argument("--batch-size", type=int, default=None, help="override train.batch_size")
        p.add_argument("--force", action="store_true", help="start the run over when its config changed")
        p.add_argument("--init-from", default=None, metavar="MODEL_DIR",
                       help="fine-tune: start a new run from this model folder's weights (same model config)")
    p.add_argument("--vae", default=None, help="VAE model folder for the latent cache (default: the bundled VAE)")
    train_sub.choices["vae"].add_argument(
        "--generated", default=None, metavar="BANK",
        help="generated-latent bank (`gen3d train bank`): train the decoder on the DiT's samples too (data.generated)")
    p = train_sub.add_parser("bank", parents=[common],
                             help="the DiT's samples of its training set, for a generator-aware decoder fine-tune "
                                  "(`gen3d train vae --generated BANK`)")
    p.add_argument("--data", required=True, nargs="+", metavar="FOLDER",
                   help="`gen3d data prepare` output folder(s) the DiT was trained on (their train split)")
    p.add_argument("--model", default=None, metavar="MODEL_DIR",
                   help="image -> 3D model folder (pipeline.json, vae/, dit/; default: the bundled model)")
    p.add_argument("--views", type=int, default=4, help="condition views sampled per asset (default 4)")
    p.add_argument("--seed", type=int, default=100_000, help="seed of the first sample (one more per sample)")
    p.add_argument("--out", required=True, help="bank file to write (.npz)")
    p = train_sub.add_parser("pack", parents=[common],
                             help="the DiT's training set (VAE latents, condition images) in one file, "
                                  "for `gen3d train dit --data PACK` elsewhere")
    p.add_argument("--config", default=None, help="the DiT YAML the pack is for (image size, views, val assets)")
    p.add_argument("--data", required=True, nargs="+", metavar="FOLDER", help="`gen3d data prepare` output folder(s)")
    p.add_argument("--val-data", default=None, help="prepared folder for validation (default: --data's val split)")
    p.add_argument("--vae", default=None, help="VAE model folder for the latents (default: the bundled VAE)")
    p.add_argument("--fp16-latents", action="store_true",
                   help="store the latents rounded to float16 (half the pack; training reads them as float32)")
    p.add_argument("--out", required=True, help="pack file to write (.npz)")
    p = train_sub.add_parser("export", parents=[common], help="write a model folder from a run")
    p.add_argument("run", help="run folder")
    p.add_argument("--out", required=True, help="model folder to write (model.safetensors + config.json)")
    p.add_argument("--fp16", action="store_true", help="store weights in float16")
    p.add_argument("--weights", choices=["ema", "live"], default="ema", help="EMA (default) or live weights")

    p = sub.add_parser("generate", parents=[common], help="image(s) -> 3D mesh (the main job)")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("-o", "--out", required=True, help="output file (one image) or folder (several)")
    p.add_argument("--model", default=None, help="model folder with pipeline.json (default: the bundled tiny model)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale; 1.0: none, one model evaluation per step "
                        "(default: the model's)")
    p.add_argument("--sampler", default=None, help="sampler name (e.g. dpmpp_2m, unipc_bh2, ddim)")
    p.add_argument("--seed", type=int, default=0, help="random seed, the same for every image (default: 0)")
    p.add_argument("--faces", type=int, default=None, help="face budget of each output")
    p.add_argument("--samples", type=int, default=None,
                   help="latents per image (seeds SEED, SEED+1, ...) whose mean occupancy is extracted "
                        "(default: the model's)")
    p.add_argument("--resolution", type=int, default=None, help="extraction grid resolution")
    p.add_argument("--orient", choices=ORIENT_CHOICES, default=None,
                   help="front: turn each sample about the vertical axis so that the image shows its +Z "
                        "(front) side; none: keep the model's own orientation (default: the model's)")
    p.add_argument("--width", choices=WIDTH_CHOICES, default=None,
                   help="fit: scale the output's width (x) so that its front silhouette has the image's "
                        "width/height ratio when the model's is off by more than 3%%; model: keep the "
                        "model's width (default: the model's)")
    p.add_argument("--carve", choices=CARVE_CHOICES, default=None,
                   help="silhouette: remove what the front camera would see outside the image's foreground; "
                        "none: keep the model's surface (default: the model's)")
    p.add_argument("--format", choices=["glb", "obj", "ply", "stl"], default=None,
                   help="output format (default: from OUT's suffix, else glb)")

    evaluate = sub.add_parser("eval", help="measure a model against ground truth")
    eval_sub = evaluate.add_subparsers(dest="eval_command", metavar="MODEL", parser_class=_Parser)
    p = eval_sub.add_parser("vae", parents=[common], help="reconstruct meshes through the VAE: IoU, Chamfer, F-score")
    p.add_argument("--checkpoint", default=None, help="VAE model folder (default: the bundled tiny VAE)")
    p.add_argument("--meshes", nargs="+", required=True, help="mesh files (normalized to the canonical frame)")
    p.add_argument("--resolution", type=int, default=256, help="extraction grid resolution (default: 256)")
    p.add_argument("--output", default=None, help="also write the JSON result to this file")
    p.add_argument("--save-meshes", default=None, help="folder for the reconstructed meshes (GLB)")
    return parser
