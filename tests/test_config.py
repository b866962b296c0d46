"""The profile loader: valid profiles load, bad ones fail loudly with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from echo_utils.config import ConfigError, RunPaths, StudyConfig, config_hash, load_config, resolve_run_dir

PARAMS = Path(__file__).resolve().parent.parent / "notebooks" / "params"


@pytest.mark.parametrize("name", ["ci", "demo", "paper"])
def test_shipped_profiles_validate(name, monkeypatch):
    monkeypatch.setenv("CAMUS_ROOT", "/data/camus")
    monkeypatch.setenv("TED_ROOT", "/data/ted")
    cfg = load_config(PARAMS / f"{name}.yaml")
    assert isinstance(cfg, StudyConfig)
    assert cfg.name == name


def test_paper_profile_holds_the_papers_settings(monkeypatch):
    monkeypatch.setenv("CAMUS_ROOT", "/data/camus")
    monkeypatch.setenv("TED_ROOT", "/data/ted")
    cfg = load_config(PARAMS / "paper.yaml")
    assert cfg.data.resize == 512
    assert (cfg.registration.grid_spacing, cfg.registration.alpha, cfg.registration.iterations) == (32, 1.0, 10_000)
    assert (cfg.registration.batch_size, cfg.registration.lr, cfg.registration.seed) == (32, 1e-3, 2022)
    assert cfg.nnunet.epochs == 1000 and cfg.nnunet.folds == (0, 1, 2, 3, 4)
    assert cfg.nnunet.configuration == "default"
    assert cfg.data.root == "/data/camus"  # ${CAMUS_ROOT} is expanded


def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    p = _write(tmp_path, "name: x\nregistration:\n  alpah: 1.0\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "registration.alpah" in str(e.value) and str(p) in str(e.value)


def test_wrong_type_is_an_error(tmp_path):
    p = _write(tmp_path, "name: x\nregistration:\n  iterations: many\n")
    with pytest.raises(ConfigError, match="registration.iterations"):
        load_config(p)


def test_impossible_value_is_an_error(tmp_path):
    p = _write(tmp_path, "name: x\ndata:\n  frames: [9, 3]\n")
    with pytest.raises(ConfigError, match="frames"):
        load_config(p)


def test_missing_name_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="name"):
        load_config(_write(tmp_path, "seed: 1\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "name: [unclosed\n"))


def test_unset_environment_variable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SURELY_UNSET_ROOT", raising=False)
    p = _write(tmp_path, "name: x\ndata:\n  source: camus\n  root: ${SURELY_UNSET_ROOT}\n")
    with pytest.raises(ConfigError, match="SURELY_UNSET_ROOT"):
        load_config(p)


def test_overrides_are_validated_too():
    cfg = load_config(PARAMS / "ci.yaml", overrides={"registration": {"alpha": 0.25}})
    assert cfg.registration.alpha == 0.25
    assert cfg.registration.grid_spacing == load_config(PARAMS / "ci.yaml").registration.grid_spacing
    with pytest.raises(ConfigError, match="alpha"):
        load_config(PARAMS / "ci.yaml", overrides={"registration": {"alpha": -1}})


def test_run_dir_resolution(tmp_path):
    cfg = load_config(PARAMS / "ci.yaml")
    rd = resolve_run_dir(cfg, tmp_path / "run")
    assert rd.is_dir() and RunPaths(rd).metrics == rd / "metrics"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_run_dir(cfg, tmp_path / "missing", create=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        resolve_run_dir(cfg, tmp_path / "file")


def test_config_hash_is_stable_and_sensitive():
    a = load_config(PARAMS / "ci.yaml")
    b = load_config(PARAMS / "ci.yaml", overrides={"registration": {"alpha": 0.5}})
    assert config_hash(a.registration) == config_hash(load_config(PARAMS / "ci.yaml").registration)
    assert config_hash(a.registration) != config_hash(b.registration)
