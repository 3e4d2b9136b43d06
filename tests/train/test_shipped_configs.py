"""Every run config shipped in configs/ resolves as `gen3d train` reads it (unknown keys are rejected)."""

from pathlib import Path

import pytest

from gen3d.errors import InputError
from gen3d.train.commands import resolve_config
from gen3d.train.dit import DiTRunConfig
from gen3d.train.vae import VAERunConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
KINDS = {"vae": VAERunConfig, "dit": DiTRunConfig}
SHIPPED = sorted((kind, path) for kind in KINDS for path in (CONFIGS / kind).glob("*.yaml"))


def test_configs_are_shipped():
    assert {kind for kind, _ in SHIPPED} == set(KINDS)


@pytest.mark.parametrize("kind,path", SHIPPED, ids=[f"{k}/{p.name}" for k, p in SHIPPED])
def test_shipped_config_resolves(kind, path):
    cfg = resolve_config(KINDS[kind], path)
    assert cfg.train.steps > 0


def test_unknown_key_in_a_copy_is_rejected(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text((CONFIGS / "vae" / "tiny_decoder_2.yaml").read_text().replace("  steps:", "  stepz:"))
    with pytest.raises(InputError) as error:
        resolve_config(VAERunConfig, broken)
    assert error.value.reason == "bad_config"
    assert "stepz" in error.value.message
