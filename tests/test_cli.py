"""The gen3d command line: exit codes, --json, reason codes on every shared mesh (CONVENTIONS)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gen3d import cli
from gen3d.geometry.io import load_mesh
from tests.geometry.test_io import VALID


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", VALID)
def test_info_valid(shared_meshes, capsys, name):
    code, out, err = run(["info", str(shared_meshes / name), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)  # exactly one JSON object
    for key in ("vertices", "faces", "components", "watertight", "bounds"):
        assert key in info
    assert info["faces"] > 0 and info["components"] >= 1
    assert "Traceback" not in err


def test_info_warnings_named(shared_meshes, capsys):
    code, out, err = run(["info", str(shared_meshes / "nancolor.obj"), "--json"], capsys)
    assert code == 0 and "nonfinite_colors_dropped" in err
    assert json.loads(out)["warnings"][0]["code"] == "nonfinite_colors_dropped"
    code, out, err = run(["info", str(shared_meshes / "notenoughindices.obj")], capsys)
    assert code == 0 and "malformed_face_skipped" in out + err


def test_info_rejects_empty(shared_meshes, capsys):
    code, out, err = run(["info", str(shared_meshes / "empty.obj"), "--json"], capsys)
    assert code == 2
    assert json.loads(out) == {"ok": False, "reason": "empty", "message": json.loads(out)["message"]}
    assert err.count("\n") == 1 and "empty" in err


def test_info_plain_text(shared_meshes, capsys):
    code, out, _ = run(["info", str(shared_meshes / "spot.obj")], capsys)
    assert code == 0 and "components 1" in out and "watertight True" in out


@pytest.mark.parametrize(
    "args, reason",
    [
        (["info", "does-not-exist.obj"], "missing_file"),
        (["info"], "usage"),
        (["frobnicate"], "usage"),
        (["convert", "x.obj"], "usage"),
        (["info", "a.obj", "--threads", "zero"], "usage"),
    ],
)
def test_usage_and_input_errors_exit_2(capsys, args, reason):
    code, out, err = run([*args, "--json"], capsys)
    assert code == 2
    assert json.loads(out)["reason"] == reason
    assert "Traceback" not in err


def test_internal_error_exit_1_with_log(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def boom(args):
        raise RuntimeError("simulated bug")

    monkeypatch.setitem(cli.COMMANDS, "doctor", boom)
    code, out, err = run(["doctor"], capsys)
    assert code == 1
    logs = list((tmp_path / "gen3d" / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and "simulated bug" in logs[0].read_text()
    assert str(logs[0]) in err


def test_convert_bunny_to_budget(shared_meshes, capsys, tmp_path, load_normalized):
    from gen3d.geometry.metrics import chamfer_l1
    from gen3d.geometry.transform import normalize

    out_path = tmp_path / "bunny.glb"
    code, out, err = run(["convert", str(shared_meshes / "stanford-bunny.obj"), str(out_path), "--faces", "5000",
                          "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["faces_out"] <= 5000
    converted, _ = normalize(load_mesh(out_path))
    assert converted.num_faces <= 5000
    assert chamfer_l1(load_normalized("stanford-bunny.obj"), converted) < 0.005


def test_convert_to_a_budget_the_quadric_passes_stall_above(shared_meshes, capsys, tmp_path):
    """The milk truck to 20 faces: quadric decimation stalls near 360; the vertex clustering fallback
    reaches the budget and says so in a warning."""
    code, out, err = run(["convert", str(shared_meshes / "CesiumMilkTruck.glb"), str(tmp_path / "t.glb"),
                          "--faces", "20", "--json"], capsys)
    summary = json.loads(out)
    assert code == 0 and 0 < summary["faces_out"] <= 20 and "decimation_clustered" in err
    assert "decimation_clustered" in [w["code"] for w in summary["warnings"]]


def test_convert_textured_with_budget_warns(shared_meshes, capsys, tmp_path):
    code, out, err = run(["convert", str(shared_meshes / "spot.obj"), str(tmp_path / "s.glb"), "--faces", "1000",
                          "--normalize", "--json"], capsys)
    assert code == 0
    assert "texture_dropped" in [w["code"] for w in json.loads(out)["warnings"]]
    assert "texture_dropped" in err
    mesh = load_mesh(tmp_path / "s.glb")
    assert max(mesh.bounds[1] - mesh.bounds[0]) == pytest.approx(1.9, rel=1e-5)


def test_convert_bad_output_format(shared_meshes, capsys, tmp_path):
    code, out, _ = run(["convert", str(shared_meshes / "cow.obj"), str(tmp_path / "c.fbx"), "--json"], capsys)
    assert code == 2 and json.loads(out)["reason"] == "unsupported_format"
    assert not (tmp_path / "c.fbx").exists()


def test_doctor_json(capsys):
    code, out, _ = run(["doctor", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["ok"] and "torch" in report and "cuda_available" in report
    assert all(report["bundled_model"][name]["status"] == "ok" for name in ("vae", "dit")), report["bundled_model"]


def test_data_procedural(capsys, tmp_path):
    code, out, err = run(["data", "procedural", str(tmp_path / "shapes"), "--families", "cup", "table",
                          "--count", "3", "--seed", "5", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["count"] == 3
    assert len(list((tmp_path / "shapes").glob("*.obj"))) == 3
    code, out, _ = run(["data", "procedural", str(tmp_path / "x"), "--families", "spaceship", "--json"], capsys)
    assert code == 2


def test_console_script_version():
    """The installed entry point runs in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-m", "gen3d.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("gen3d ")


def test_every_emitted_warning_code_is_declared(shared_meshes):
    from gen3d.errors import WARNING_CODES

    codes = {w.code for name in VALID for w in load_mesh(shared_meshes / name).warnings}
    assert codes and codes <= set(WARNING_CODES)


def test_data_prepare_json_and_config_errors(capsys, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    code, _, _ = run(["data", "procedural", str(src), "--families", "cup", "--count", "2", "--split", "val"], capsys)
    assert code == 0
    config = tmp_path / "c.yaml"
    config.write_text("pose: priors\noutput:\n  surface_points: 1024\n  render_views: 0\n")
    code, stdout, _ = run(["data", "prepare", str(src), str(out), "--config", str(config), "--json"], capsys)
    summary = json.loads(stdout)
    assert code == 0 and summary["ok"] and summary["accepted"] == 2 and summary["inputs"] == 2
    config.write_text("pose: priors\noutput:\n  surface_pointz: 1024\n")
    code, stdout, _ = run(["data", "prepare", str(src), str(out), "--config", str(config), "--json"], capsys)
    assert code == 2 and "surface_pointz" in json.loads(stdout)["message"]
    config.write_text("pose: priors\nseed: 3\noutput:\n  surface_points: 1024\n  render_views: 0\n")
    code, stdout, _ = run(["data", "prepare", str(src), str(out), "--config", str(config), "--json"], capsys)
    assert code == 2 and json.loads(stdout)["reason"] == "config_changed"
