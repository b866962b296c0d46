"""The profile loader: valid profiles load, bad ones fail loudly with the file and key named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echo_utils.config import (
    SEED_OFFSETS,
    ConfigError,
    StudyConfig,
    config_hash,
    display_path,
    load_config,
    parse_overrides,
    resolve_params_path,
)
from echo_utils.rundir import RunPaths, open_run, resolve_run_dir

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


def test_duplicate_keys_are_refused_naming_the_key_and_both_lines(tmp_path):
    """YAML keeps the last of two equal keys silently; a profile refuses it (top level, nested, flow style)."""
    with pytest.raises(ConfigError, match=r"bad.yaml: key 'seed' is given twice, on lines 2 and 5; keep one"):
        load_config(_write(tmp_path, "name: x\nseed: 0\ndata:\n  size: 64\nseed: 1\n"))
    with pytest.raises(ConfigError, match=r"key 'data.n_patients' is given twice, on lines 3 and 5"):
        load_config(_write(tmp_path, "name: x\ndata:\n  n_patients: 6\n  size: 64\n  n_patients: 8\n"))
    with pytest.raises(ConfigError, match=r"key 'data.size' is given twice, on line 2"):
        load_config(_write(tmp_path, "name: x\ndata: {size: 64, size: 32}\n"))
    with pytest.raises(ConfigError, match=r"key 'registration' is given twice"):
        parse_overrides('{"registration": {"alpha": 0}, "registration": {"alpha": 1}}')
    # the same key in two different sections is not a duplicate
    assert load_config(_write(tmp_path, "name: x\nseed: 3\ndata:\n  seed: 4\n")).data.seed == 4


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
    rd = resolve_run_dir(cfg.name, tmp_path / "run")
    assert rd.is_dir() and RunPaths(rd).metrics == rd / "metrics"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_run_dir(cfg.name, tmp_path / "missing", create=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        resolve_run_dir(cfg.name, tmp_path / "file")


def test_config_hash_is_stable_and_sensitive():
    a = load_config(PARAMS / "ci.yaml")
    b = load_config(PARAMS / "ci.yaml", overrides={"registration": {"alpha": 0.5}})
    assert config_hash(a.registration) == config_hash(load_config(PARAMS / "ci.yaml").registration)
    assert config_hash(a.registration) != config_hash(b.registration)


# --- strict types and load-time checks (a bad value fails here, not in notebook 04) ---------------------------


@pytest.mark.parametrize(
    "yaml_text, named",
    [
        ("registration:\n  iterations: true\n", "registration.iterations"),  # no bool for an int
        ("registration:\n  iterations: 10.5\n", "registration.iterations"),
        ("registration:\n  alpha: '1.0'\n", "registration.alpha"),  # no string for a number
        ("data:\n  full_cycle: 1\n", "data.full_cycle"),  # no int for a bool
        ("registration:\n  grid_spacing: 7\n", "power of two"),
        ("nnunet:\n  folds: []\n", "nnunet.folds"),
        ("nnunet:\n  folds: [0, 0]\n", "distinct"),
        ("data:\n  n_patients: 6\nnnunet:\n  folds: [7]\n", "8-fold cross-validation"),
        ("nnunet:\n  models: []\n", "nnunet.models"),
        ("data:\n  views: []\n", "data.views"),
    ],
)
def test_bad_values_fail_on_load(tmp_path, yaml_text, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(_write(tmp_path, "name: x\n" + yaml_text))


def test_ints_are_floats_and_exponents_are_numbers(tmp_path):
    cfg = load_config(_write(tmp_path, "name: x\nregistration:\n  alpha: 0\n  lr: 1e-3\n"))
    assert cfg.registration.alpha == 0.0 and cfg.registration.lr == pytest.approx(0.001)


def test_folds_are_checked_against_the_cohort(tmp_path):
    # 20 patients, test 0.2 -> 16 training patients: 16-fold is possible, 17-fold is not
    ok = "name: x\ndata:\n  n_patients: 20\n  test_fraction: 0.2\nnnunet:\n  folds: [15]\n"
    assert load_config(_write(tmp_path, ok)).nnunet.folds == (15,)
    with pytest.raises(ConfigError, match="needs at least 17 training patients.*leaves 16"):
        load_config(_write(tmp_path, ok.replace("[15]", "[16]")))


# --- overrides: every form means the same, and is validated like the file -------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        {"registration": {"alpha": 0}, "data": {"frames": [6, 8]}},
        {"registration.alpha": 0, "data.frames": [6, 8]},
        ["registration.alpha=0", "data.frames=[6, 8]"],
        "registration.alpha=0 data.frames=[6,8]",
        '{"registration": {"alpha": 0}, "data": {"frames": [6, 8]}}',
    ],
)
def test_override_forms_are_equivalent(form):
    assert parse_overrides(form) == {"registration": {"alpha": 0}, "data": {"frames": [6, 8]}}
    cfg = load_config(PARAMS / "ci.yaml", overrides=form)
    assert cfg.registration.alpha == 0.0 and cfg.data.frames == (6, 8)


@pytest.mark.parametrize("bad", [["alpha"], ["=3"], ["registration..alpha=1"], 3])
def test_malformed_overrides_are_errors(bad):
    with pytest.raises(ConfigError):
        load_config(PARAMS / "ci.yaml", overrides=bad)


def test_override_errors_name_the_key_and_the_override():
    with pytest.raises(ConfigError) as e:
        load_config(PARAMS / "ci.yaml", overrides=["registration.alpah=0"])
    assert "unknown key 'registration.alpah'" in str(e.value) and "with overrides registration.alpah=0" in str(e.value)
    with pytest.raises(ConfigError, match="data.n_patients"):
        load_config(PARAMS / "ci.yaml", overrides=["data.n_patients=eight"])


# --- one seed, environment knobs ---------------------------------------------------------------------------------


def test_section_seeds_derive_from_the_top_level_seed(tmp_path):
    cfg = load_config(_write(tmp_path, "name: x\nseed: 5\n"))
    assert (cfg.data.seed, cfg.registration.seed, cfg.nnunet.seed) == (5, 5 + SEED_OFFSETS["registration"], 5)
    cfg = load_config(_write(tmp_path, "name: x\nseed: 5\nregistration:\n  seed: 1\n"))
    assert (cfg.data.seed, cfg.registration.seed) == (5, 1), "an explicit section seed is kept"
    default = load_config(_write(tmp_path, "name: x\n"))
    assert (default.data.seed, default.registration.seed) == (0, 2022), "seed 0 keeps the authors' 2022"
    direct = StudyConfig(name="x", seed=7)  # built in Python, not loaded: derived the same way
    assert (direct.data.seed, direct.registration.seed, direct.nnunet.seed) == (7, 2029, 7)


def test_environment_knobs_are_profile_keys(monkeypatch):
    assert load_config(PARAMS / "ci.yaml").nnunet.threads == 1
    monkeypatch.setenv("ECHO_NNUNET_THREADS", "3")
    monkeypatch.setenv("ECHO_NNUNET_POOLS", "process")
    cfg = load_config(PARAMS / "ci.yaml")
    assert (cfg.nnunet.threads, cfg.nnunet.pools) == (3, "process")
    assert load_config(PARAMS / "ci.yaml", overrides=["nnunet.threads=2"]).nnunet.threads == 2, "explicit wins"
    monkeypatch.setenv("ECHO_NNUNET_POOLS", "fork")
    with pytest.raises(ConfigError, match="nnunet.pools"):
        load_config(PARAMS / "ci.yaml")


# --- paths -------------------------------------------------------------------------------------------------------


def test_relative_profile_paths_resolve_from_cwd_then_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_params_path("notebooks/params/ci.yaml") == PARAMS / "ci.yaml"
    local = tmp_path / "notebooks" / "params"
    local.mkdir(parents=True)
    (local / "ci.yaml").write_text("name: local\n")
    assert resolve_params_path("notebooks/params/ci.yaml") == local / "ci.yaml"
    assert load_config("notebooks/params/ci.yaml").name == "local"


def test_display_path_is_project_relative(tmp_path):
    root = PARAMS.parent.parent
    assert display_path(root / "runs" / "demo") == "runs/demo"
    assert display_path(root) == "."
    assert display_path(tmp_path / "x") == str(tmp_path.resolve() / "x")


def test_open_run_records_and_checks_the_run_settings(tmp_path):
    cfg, paths = open_run(PARAMS / "ci.yaml", ["registration.alpha=0"], tmp_path / "run")
    record = json.loads((paths.root / "run.json").read_text())
    assert record["profile"] == cfg.model_dump(mode="json") and record["overrides"] == {"registration": {"alpha": 0}}
    again, _ = open_run(PARAMS / "ci.yaml", {"registration": {"alpha": 0}}, tmp_path / "run", create=False)
    assert again == cfg
    # speed-only keys may differ; a setting may not, and the refusal changes nothing
    open_run(PARAMS / "ci.yaml", ["registration.alpha=0", "nnunet.threads=2"], tmp_path / "run")
    before = (paths.root / "run.json").stat().st_mtime_ns
    with pytest.raises(ConfigError) as e:
        open_run(PARAMS / "ci.yaml", ["data.n_patients=8"], tmp_path / "run")
    msg = str(e.value)
    assert "registration.alpha: 0.0 there, 1.0 now" in msg and "data.n_patients: 6 there, 8 now" in msg
    assert "--run-dir" in msg and (paths.root / "run.json").stat().st_mtime_ns == before


def test_every_study_option_is_shown_in_a_shipped_profile():
    """Each option says in a profile file why it exists: set in one, or shown commented with its default."""
    import re

    text = "\n".join((PARAMS / f"{n}.yaml").read_text() for n in ("ci", "demo", "paper"))
    missing = []
    for section in ("data", "registration", "pseudo_labels", "nnunet", "evaluation"):
        for key in getattr(StudyConfig.model_fields[section].annotation, "model_fields"):
            if key != "seed" and not re.search(rf"(?m)^\s*#?\s*{key}:", text):
                missing.append(f"{section}.{key}")
    assert not missing, f"options in no profile (set them or show them commented, with why): {missing}"
