"""The `gen3d` command line: argument parsing, exit codes and output formatting only.

Exit codes (CONVENTIONS): 0 ok; 2 bad input or usage (one line on stderr); 1 internal error
(traceback written to a log file whose path the message gives).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import gen3d
from gen3d.cli_args import UsageError, build_parser
from gen3d.errors import FaceBudgetError, InputError

log = logging.getLogger("gen3d")


def _configure(args: argparse.Namespace) -> None:
    quiet = args.quiet
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, format="gen3d: %(message)s",
                        stream=sys.stderr, force=True)
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be >= 1")
        import torch

        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("unsupported_device", "--device cuda was asked for but no CUDA device is available")


def _progress(args: argparse.Namespace, total: int | None = None, desc: str = ""):
    from tqdm import tqdm

    disable = args.json or args.quiet or not sys.stderr.isatty()
    return lambda it: tqdm(it, total=total, desc=desc, disable=disable, file=sys.stderr)


def _emit(args: argparse.Namespace, payload: dict, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(payload))
    elif not args.quiet:
        print("\n".join(lines))


def cmd_info(args: argparse.Namespace) -> int:
    from gen3d.geometry.io import load_mesh
    from gen3d.geometry.stats import mesh_info

    info = mesh_info(load_mesh(args.path))
    lo, hi = info["bounds"]
    lines = [
        f"{args.path}",
        f"  vertices {info['vertices']}  faces {info['faces']}  components {info['components']}",
        f"  watertight {info['watertight']}  edge-manifold {info['edge_manifold']}"
        f"  winding-consistent {info['winding_consistent']}",
        f"  bounds [{lo[0]:.4g}, {lo[1]:.4g}, {lo[2]:.4g}] .. [{hi[0]:.4g}, {hi[1]:.4g}, {hi[2]:.4g}]",
        f"  uv {info['has_uv']}  texture {info['has_texture']}  vertex colours {info['has_vertex_colors']}"
        f"  materials {info['materials']}",
    ] + [f"  warning {w['code']}: {w['message']}" for w in info["warnings"]]
    _emit(args, {"ok": True, "path": str(args.path), **info}, lines)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from gen3d.geometry.cleanup import simplify
    from gen3d.geometry.export import WRITERS, save_mesh
    from gen3d.geometry.io import load_mesh
    from gen3d.geometry.transform import normalize

    out = Path(args.output)
    if out.suffix.lower() not in WRITERS:
        raise InputError("unsupported_format", f"cannot write '{out.suffix}': choose one of {', '.join(WRITERS)}")
    if args.faces is not None and args.faces < 4:
        raise UsageError("--faces must be >= 4")
    mesh = load_mesh(args.input)
    faces_in = mesh.num_faces
    if args.faces is not None:
        known = len(mesh.warnings)
        try:
            mesh = simplify(mesh, args.faces)
        except FaceBudgetError as exc:
            raise UsageError(f"--faces {args.faces}: {exc}") from None
        for w in mesh.warnings[known:]:
            log.warning("%s: %s", args.input, w)
    if args.normalize:  # after simplification, so that the output's longest side is exactly 1.9
        mesh, _ = normalize(mesh)
    save_mesh(mesh, out)
    payload = {"ok": True, "input": str(args.input), "output": str(out), "faces_in": faces_in,
               "faces_out": mesh.num_faces, "warnings": [{"code": w.code, "message": w.message} for w in mesh.warnings]}
    _emit(args, payload, [f"wrote {out} ({mesh.num_faces} faces, from {faces_in})"])
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from gen3d.geometry.io import load_mesh
    from gen3d.geometry.transform import normalize
    from gen3d.render.cameras import orbit_cameras
    from gen3d.render.views import render_mesh, write_views
    from gen3d.utils.images import load_image

    if args.views < 1 or not 8 <= args.res <= 4096:
        raise UsageError("--views must be >= 1 and --res within [8, 4096]")
    azim = args.azim if args.azim is not None else [360.0 * i / args.views for i in range(args.views)]
    elev = args.elev if args.elev is not None else [20.0]
    if len(elev) == 1:
        elev = elev * len(azim)
    if len(azim) == 1:
        azim = azim * len(elev)
    if len(elev) != len(azim):
        raise UsageError(f"--elev has {len(elev)} values and --azim {len(azim)}: give one or the same number")
    texture = np.asarray(load_image(args.texture).convert("RGB")) if args.texture else None
    mesh = load_mesh(args.mesh)
    if not args.no_normalize:
        mesh, _ = normalize(mesh)
    cameras = orbit_cameras(elev, azim, radius=args.radius, fov_deg=args.fov, width=args.res,
                            far=max(10.0, 2 * args.radius + 2))
    start = time.perf_counter()
    views = render_mesh(mesh, cameras, backend=args.backend, texture=texture)
    extra = [{"elevation": e, "azimuth": a} for e, a in zip(elev, azim)]
    write_views(views, cameras, args.out, extra)
    seconds = time.perf_counter() - start
    coverage = [round(float(m.mean()), 4) for m in views.mask]
    payload = {"ok": True, "out": str(args.out), "views": len(azim), "resolution": args.res,
               "coverage": coverage, "seconds": round(seconds, 3)}
    _emit(args, payload, [f"wrote {len(azim)} views ({args.res}x{args.res}) to {args.out} in {seconds:.2f} s"])
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from gen3d.doctor import doctor_report

    report = doctor_report()
    lines = []
    for key, value in report.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v['status'] if isinstance(v, dict) else v}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {value}")
    _emit(args, {"ok": True, **report}, lines)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from gen3d.stages.curate.config import PrepareConfig
    from gen3d.stages.curate.job import prepare
    from gen3d.utils.config import load_yaml

    try:
        cfg = load_yaml(PrepareConfig, args.config) if args.config else PrepareConfig()
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"--config: {exc}") from exc
    for value, section, key in ((args.max_faces, cfg.filters, "max_faces"),
                                (args.render_views, cfg.output, "render_views"),
                                (args.render_res, cfg.output, "render_res")):
        if value is not None:
            setattr(section, key, value)
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if args.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UsageError("--executor ray needs ray: pip install 'gen3d[ray]'")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    show = not (args.json or args.quiet) and sys.stderr.isatty()
    summary = prepare(args.src, args.out, cfg, executor=args.executor, workers=args.workers, threads=threads,
                      timeout=args.timeout_per_asset, memory_mb=args.memory_per_asset, ray_address=args.ray_address,
                      limit=args.limit, force=args.force, progress=show)
    reasons = ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()) or "none"
    _emit(args, summary, [f"{summary['inputs']} inputs: {summary['accepted']} accepted, {summary['rejected']} "
                          f"rejected, {summary['failed']} failed ({reasons}); {summary['processed_now']} processed "
                          f"in {summary['seconds']:.1f} s -> {args.out}"])
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "prepare":
        return cmd_prepare(args)
    if args.data_command != "procedural":
        raise UsageError("gen3d data: choose a job (procedural, prepare)")
    from gen3d.geometry.procedural import FAMILIES, write_procedural

    families = args.families or list(FAMILIES)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    if args.count < 1:
        raise UsageError("--count must be >= 1")
    start = time.perf_counter()
    try:
        rows = write_procedural(args.out, families, args.count, seed=args.seed, split=args.split,
                                file_format=args.format, progress=_progress(args, args.count, "shapes"))
    except ValueError as exc:  # seed range outside the split
        raise UsageError(str(exc)) from exc
    seconds = time.perf_counter() - start
    payload = {"ok": True, "out": str(args.out), "count": len(rows), "split": args.split,
               "families": families, "seconds": round(seconds, 3)}
    _emit(args, payload, [f"wrote {len(rows)} {args.split} shapes to {args.out} in {seconds:.1f} s"])
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from gen3d.train.commands import bank_generated, export_model, pack_dit, train_dit, train_vae

    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if args.train_command == "export":
        folder = export_model(args.run, args.out, fp16=args.fp16, weights=args.weights)
        _emit(args, {"ok": True, "out": str(folder)}, [f"wrote {folder}"])
        return 0
    if args.train_command == "pack":
        path = pack_dit(args.config, args.data, args.out, val_data=args.val_data, vae=args.vae,
                        fp16_latents=args.fp16_latents)
        _emit(args, {"ok": True, "out": str(path)}, [f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)"])
        return 0
    if args.train_command == "bank":
        path = bank_generated(args.data, args.out, model=args.model, views=args.views, seed=args.seed,
                              progress=not (args.json or args.quiet))
        _emit(args, {"ok": True, "out": str(path)}, [f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)"])
        return 0
    if args.train_command not in ("vae", "dit"):
        raise UsageError("gen3d train: choose a model (vae, dit), bank, pack or export")
    options = dict(val_data=args.val_data, init_from=args.init_from, device=device, force=args.force,
                   progress=not (args.json or args.quiet), steps=args.steps, batch_size=args.batch_size)
    if args.train_command == "vae":
        folder = train_vae(args.config, args.data, args.out, generated=args.generated, **options)
    else:
        folder = train_dit(args.config, args.data, args.out, vae=args.vae, **options)
    _emit(args, {"ok": True, "model": str(folder)}, [f"trained; EMA model in {folder}"])
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from gen3d.geometry.export import save_mesh
    from gen3d.pipelines.image_to_3d import ImageTo3D, check_settings
    from gen3d.utils.images import load_image

    inputs = []
    for item in map(Path, args.images):
        inputs += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if item.is_dir() else [item]
    if not inputs:
        raise InputError("missing_file", f"no images in {' '.join(args.images)}")
    single = len(inputs) == 1 and not Path(args.images[0]).is_dir()
    out = Path(args.out)
    fmt = args.format or (out.suffix.lower().lstrip(".") if single and out.suffix else "glb")
    if single and out.suffix and out.suffix.lower() != f".{fmt}":
        raise UsageError(f"--format {fmt} does not match the output name {out.name}")
    if single and not out.suffix:
        out = out.with_suffix(f".{fmt}")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    pipeline = ImageTo3D.from_pretrained(args.model, device)
    options = dict(steps=args.steps, guidance=args.guidance, sampler=args.sampler, faces=args.faces,
                   resolution=args.resolution, samples=args.samples, orient=args.orient,
                   width=args.width, carve=args.carve)
    try:
        check_settings(pipeline.resolve(**options))
    except ValueError as error:
        raise UsageError(f"gen3d generate: {error}") from None
    extras = pipeline.metadata(args.seed, **options)
    results = []
    for path in _progress(args, len(inputs), "images")(inputs):
        target = out if single else out / f"{path.stem}.{fmt}"
        start = time.perf_counter()
        try:
            mesh = pipeline.run(load_image(path), seed=args.seed, name=path.name, **options)
            save_mesh(mesh, target, extras)
            results.append({"image": str(path), "ok": True, "output": str(target), "faces": mesh.num_faces,
                            "seconds": round(time.perf_counter() - start, 3)})
        except (InputError, FaceBudgetError) as exc:  # a bad image does not stop the others
            reason, message = (exc.reason, exc.message) if isinstance(exc, InputError) else ("usage", f"--faces: {exc}")
            results.append({"image": str(path), "ok": False, "reason": reason, "message": message})
            if not single:  # a single image's failure is the command's one error line (_fail)
                log.error("%s: %s: %s", path, reason, message)
    failed = [r for r in results if not r["ok"]]
    payload = {"ok": not failed, "results": results, **extras}
    if failed and single:
        return _fail(args.json, 2, failed[0]["reason"], failed[0]["message"])
    _emit(args, payload, [f"{r['image']} -> {r['output']} ({r['faces']} faces, {r['seconds']:.1f} s)"
                          for r in results if r["ok"]] + [f"{len(failed)} failed" if failed else ""])
    return 2 if failed else 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.eval_command != "vae":
        raise UsageError("gen3d eval: choose a model (vae)")
    from gen3d.stages.shape_vae.evaluate import evaluate_vae

    result = evaluate_vae(args.checkpoint, args.meshes, resolution=args.resolution, save_meshes=args.save_meshes,
                          progress=_progress(args, len(args.meshes), "meshes"))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"{m['mesh']}: IoU {m['iou']:.3f}  Chamfer-L1 {m['chamfer_l1']:.4f}  F@0.02 {m['fscore']:.3f}"
             for m in result["meshes"]]
    mean = result["mean"]
    lines.append(f"mean ({len(result['meshes'])}): IoU {mean['iou']:.3f}  Chamfer-L1 {mean['chamfer_l1']:.4f}  "
                 f"F@0.02 {mean['fscore']:.3f}")
    _emit(args, {"ok": True, **result}, lines)
    return 0


COMMANDS = {"info": cmd_info, "convert": cmd_convert, "render": cmd_render, "doctor": cmd_doctor, "data": cmd_data,
            "train": cmd_train, "eval": cmd_eval, "generate": cmd_generate}


def _fail(args_json: bool, code: int, reason: str, message: str) -> int:
    if args_json:
        print(json.dumps({"ok": False, "reason": reason, "message": message}))
    print(f"gen3d: error: {message}" if reason in ("usage", "internal") else f"gen3d: error: {reason}: {message}",
          file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wants_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("gen3d: choose a command (see gen3d --help)")
        _configure(args)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        return _fail(wants_json, 2, "usage", str(exc))
    except InputError as exc:
        return _fail(wants_json, 2, exc.reason, exc.message)
    except KeyboardInterrupt:
        return _fail(wants_json, 130, "interrupted", "interrupted")
    except Exception:  # a bug: keep the traceback in a log file, say where
        log_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gen3d" / "logs"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            log_dir = Path(tempfile.gettempdir())
        log_path = log_dir / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        log_path.write_text(f"gen3d {gen3d.__version__} {' '.join(argv)}\n{traceback.format_exc()}")
        return _fail(wants_json, 1, "internal", f"internal error (a bug); traceback written to {log_path}")


if __name__ == "__main__":
    sys.exit(main())
