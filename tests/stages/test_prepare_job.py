"""`gen3d data prepare` end to end: the shared real meshes, resume and config guard, a SIGKILL at a
random moment, executors agreeing, and a pathological asset stopped by the timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen3d.errors import InputError
from gen3d.geometry.procedural import write_procedural
from gen3d.stages.curate.config import OutputConfig, PrepareConfig
from gen3d.stages.curate.job import prepare

SMALL = OutputConfig(surface_points=2048, uniform_queries=1000, near_queries=1000, render_views=1, render_res=32,
                     render_backend="torch")


def _config(**changes) -> PrepareConfig:
    return PrepareConfig(output=SMALL, **changes)


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("timings")
    return rows


def _tree(out: Path) -> dict:
    """Every file under OUT except the run's own records, with its bytes' hash."""
    import hashlib

    skip = {"manifest.jsonl", "summary.json", "job.json"}
    return {p.relative_to(out).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name not in skip and p.name != "meta.json"}


def test_shared_meshes_every_file_has_a_row(shared_meshes, tmp_path):
    out = tmp_path / "out"
    summary = prepare(shared_meshes, out, _config(pose="priors"), workers=2)
    rows = {r["source"]: r for r in _rows(out)}
    inputs = sorted(p.name for p in shared_meshes.iterdir() if p.suffix.lower() in (".obj", ".glb", ".stl"))
    assert sorted(rows) == inputs and summary["inputs"] == len(inputs)
    assert rows["empty.obj"]["reason"] == "empty"
    assert rows["soup.stl"]["reason"] == "soup"
    assert rows["notenoughindices.obj"]["status"] == "rejected"
    for group in (["monkey.glb", "suzanne.obj"], ["BoxTextured.glb", "cube_compressed.obj", "nancolor.obj"]):
        assert [rows[m]["status"] for m in group].count("ok") == 1, group
    assert rows["BoxTextured.glb"]["status"] == "ok"  # the textured cube is the one kept
    for name in ("cow.obj", "teapot.obj", "rabbit.obj"):
        assert rows[name]["split"] == "val"
    for row in rows.values():
        folder = out / row["id"]
        if row["status"] == "ok":
            surface, queries = np.load(folder / "surface.npz"), np.load(folder / "queries.npz")
            assert surface["points"].shape == (2048, 3) and surface["normals"].dtype == np.float32
            assert queries["sdf"].shape == (2000,) and np.isfinite(queries["sdf"]).all()
            if row["source"] in ("spot.obj", "cow.obj", "stanford-bunny.obj"):  # closed bodies have an inside
                assert (queries["sdf"] < 0).mean() > 0.05
            assert (folder / "views" / "cameras.json").exists() and (folder / "views" / "000_rgb.png").exists()
            mask = np.asarray(Image.open(folder / "views" / "000_mask.png"))
            assert mask.max() > 0 and mask[[0, -1]].max() == 0 and mask[:, [0, -1]].max() == 0  # all in frame
            assert np.abs(surface["points"]).max() <= 0.951
            assert np.allclose(np.linalg.det(np.array(row["rotation"])), 1)
        else:
            assert row["reason"] and not folder.exists()


def test_resume_skips_done_work_and_config_changes_need_force(tmp_path):
    src = tmp_path / "src"
    write_procedural(src, ["cup", "table"], 4, seed=0, split="val")
    out = tmp_path / "out"
    first = prepare(src, out, _config(pose="priors"))
    before = _rows(out)
    again = prepare(src, out, _config(pose="priors"))
    assert first["processed_now"] == 4 and again["processed_now"] == 0 and _rows(out) == before
    with pytest.raises(InputError, match="another config"):
        prepare(src, out, _config(pose="priors", seed=1))
    assert prepare(src, out, _config(pose="priors", seed=1), force=True)["processed_now"] == 4


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    src = tmp_path / "src"
    write_procedural(src, ["cup", "table", "vase", "chair"], 8, seed=0, split="val")
    config = tmp_path / "config.yaml"
    config.write_text("pose: priors\noutput:\n  surface_points: 2048\n  uniform_queries: 1000\n"
                      "  near_queries: 1000\n  render_views: 1\n  render_res: 32\n  render_backend: torch\n")

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "gen3d.cli", "data", "prepare", str(src), str(out), "--config", str(config),
                "--workers", "2", "--threads", "1", "--json"]

    reference = tmp_path / "reference"
    subprocess.run(command(reference), check=True, capture_output=True)
    out = tmp_path / "out"
    delay = float(np.random.default_rng(int(time.time())).uniform(2.0, 6.0))
    job = subprocess.Popen(command(out), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    subprocess.run(command(out), check=True, capture_output=True)
    assert _rows(out) == _rows(reference), f"killed after {delay:.1f} s"
    assert _tree(out) == _tree(reference)
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_executors_agree(tmp_path):
    src = tmp_path / "src"
    write_procedural(src, ["cup", "lamp", "shelf"], 6, seed=0, split="val")
    manifests = []
    for name, executor, workers in (("one", "local", 1), ("two", "local", 2), ("ray", "ray", 2)):
        prepare(src, tmp_path / name, _config(pose="priors"), executor=executor, workers=workers)
        manifests.append(_rows(tmp_path / name))
    assert manifests[0] == manifests[1] == manifests[2]


def test_local_executors_agree(tmp_path):
    src = tmp_path / "src"
    write_procedural(src, ["cup", "lamp"], 4, seed=0, split="val")
    one = prepare(src, tmp_path / "one", _config(pose="priors"), workers=1)
    two = prepare(src, tmp_path / "two", _config(pose="priors"), workers=2)
    assert one["accepted"] == two["accepted"] == 4
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two")
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_pathological_asset_times_out_and_the_job_goes_on(tmp_path):
    """A 1.3M-face sphere takes far longer than the 8 s allowed here; the small cups take ~1 s each."""
    import trimesh

    src = tmp_path / "src"
    write_procedural(src, ["cup"], 2, seed=0, split="val")
    huge = trimesh.creation.icosphere(subdivisions=8)  # 1,310,720 faces
    huge.export(src / "huge.ply")
    summary = prepare(src, tmp_path / "out", _config(pose="priors"), workers=1, timeout=8.0)
    rows = {r["source"]: r for r in _rows(tmp_path / "out")}
    assert rows["huge.ply"]["status"] == "failed" and rows["huge.ply"]["reason"] == "timeout"
    assert summary["accepted"] == 2


def test_memory_guard_fails_the_asset_and_the_worker_goes_on(tmp_path):
    """An asset asking for ~2 GB of surface samples under a 400 MB guard ends failed/memory; the
    same worker then prepares a normal asset."""
    from gen3d.stages.curate.executors import LocalPool
    from gen3d.stages.curate.prepare import Task, asset_id
    from gen3d.utils.config import config_hash, to_dict

    src = tmp_path / "src"
    write_procedural(src, ["cup"], 2, seed=0, split="val")
    paths = sorted(src.glob("*.obj"))
    greedy = PrepareConfig(output=OutputConfig(surface_points=80_000_000, render_views=0), pose="priors")
    modest = _config(pose="priors")
    out = tmp_path / "out"
    out.mkdir()
    tasks = [Task(p.name, str(p), asset_id(p), str(out), to_dict(c), config_hash(c))
             for p, c in zip(paths, (greedy, modest))]
    rows = []
    LocalPool(workers=1, threads=1, timeout=120, memory_mb=400).run(tasks, rows.append)
    assert [(r["status"], r["reason"]) for r in rows] == [("failed", "memory"), ("ok", None)]


def test_inputs_any_case_recursive_without_sidecars(tmp_path):
    from gen3d.stages.curate.prepare import find_inputs

    for name in ("a/b/part.STL", "a/model.obj", "a/model.mtl", "a/tex.png", "c.GLB", ".hidden/x.obj", "d.Ply"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_inputs(tmp_path)]
    assert found == ["a/b/part.STL", "a/model.obj", "c.GLB", "d.Ply"]
    listing = tmp_path / "list.txt"
    listing.write_text("# chosen\nc.GLB\na/model.obj\n")
    assert [p.name for p in find_inputs(listing)] == ["model.obj", "c.GLB"]
    with pytest.raises(InputError):
        find_inputs(tmp_path / "missing")
