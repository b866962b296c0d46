"""The artifact store (echo_utils.artifacts): the atomic writer survives a crash mid-write, the keyed record names
the differing keys and its file, keys do not depend on dict order, and records keep their on-disk bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from echo_utils.artifacts import (
    MISSING,
    DamagedFile,
    KeyedRecord,
    RecordMismatch,
    atomic_path,
    files,
    settings_diff,
    settings_key,
    write_json,
    write_text,
)
from echo_utils.config import config_hash

ROOT = Path(__file__).resolve().parents[1]


# -- the atomic writer --------------------------------------------------------------------------------------------


def test_an_exception_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old content\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("new cont")  # half of the new content, then the writer fails
            raise RuntimeError("disk full")
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path):
    """A real crash: the child process dies (``os._exit``, no cleanup runs) after writing half of the new file."""
    target = tmp_path / "cohort.json"
    target.write_text('{"n_patients": 6}')
    child = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from echo_utils.artifacts import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as fh:
                fh.write('{{"n_patients": 1')
                fh.flush()
                os._exit(9)
    """)
    assert subprocess.run([sys.executable, "-c", child]).returncode == 9
    assert target.read_text() == '{"n_patients": 6}'
    leftovers = [p.name for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].startswith(".cohort.") and leftovers[0].endswith(".tmp.json")
    write_json(target, {"n_patients": 8})  # the next write is not disturbed by the leftover
    assert json.loads(target.read_text()) == {"n_patients": 8}


def test_the_temporary_file_is_synced_before_it_replaces_the_target(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(a))), real_replace(a, b)))
    target = tmp_path / "x.txt"
    write_text(target, "hello")
    assert target.read_text() == "hello"
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["fsync", "replace"] and events[0][1] == events[1][1]  # the same temporary file
    assert Path(events[1][1]).parent == tmp_path  # in the target's folder: the rename stays on one file system


def test_a_block_that_writes_nothing_does_not_replace_the_target(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"weights")
    with pytest.raises(FileNotFoundError, match="nothing was written for .*model.pt"):
        with atomic_path(target):
            pass
    assert target.read_bytes() == b"weights"


def test_the_temporary_name_keeps_the_suffixes_so_nibabel_writes_gzip(tmp_path):
    import nibabel as nib

    target = tmp_path / "deep" / "patient0001_2CH_half_sequence_forward.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".tmp.nii.gz") and tmp.name.startswith(".")
        nib.save(nib.Nifti1Image(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), np.eye(4)), tmp)
    assert target.read_bytes()[:2] == b"\x1f\x8b"  # gzip, as the name says
    np.testing.assert_array_equal(np.asarray(nib.load(target).dataobj).ravel(), np.arange(8))


@pytest.mark.parametrize("layout", [dict(indent=2, sort_keys=True, newline=True), dict(indent=1, sort_keys=False),
                                    dict(indent=2, sort_keys=True)])
def test_write_json_gives_the_bytes_of_json_dumps(tmp_path, layout):
    obj = {"z": 1, "a": [1, 2.5], "m": {"y": None, "b": "x"}}
    write_json(tmp_path / "r.json", obj, **layout)
    newline = layout.pop("newline", False)
    assert (tmp_path / "r.json").read_text() == json.dumps(obj, **layout) + ("\n" if newline else "")


# -- keys ---------------------------------------------------------------------------------------------------------


def test_settings_key_is_stable_across_dict_order_and_pinned():
    a = {"seed": 0, "size": 64, "pseudo_labels": {"weights": "authors", "assemble": "sdf"}}
    b = {"pseudo_labels": {"assemble": "sdf", "weights": "authors"}, "size": 64, "seed": 0}
    assert settings_key(a) == settings_key(b)
    # the hash, computed here independently: a key written to disk by an earlier version stays the same
    expected = hashlib.sha256(json.dumps(a, sort_keys=True).encode()).hexdigest()[:12]
    assert settings_key(a) == expected and len(settings_key(a, 16)) == 16
    assert settings_key({**a, "seed": 1}) != settings_key(a)
    assert config_hash(a, "x") == settings_key([a, "x"])  # the profile's hash is the same convention


# -- the keyed record ----------------------------------------------------------------------------------------------


def test_settings_diff_names_nested_keys_and_absent_ones():
    rows = settings_diff({"a": 1, "n": {"x": 1, "y": [1, 2]}}, {"a": 1, "n": {"x": 2, "y": (1, 2)}, "b": 0})
    assert rows == [("b", MISSING, 0), ("n.x", 1, 2)]
    assert repr(MISSING) == "(absent)"
    assert settings_diff({"a": {"b": 1}}, {"a": {"b": 1}}) == []


def test_a_record_with_other_settings_names_the_keys_both_values_and_the_file(tmp_path):
    rec = KeyedRecord(tmp_path / "store" / "params.json", what="the pseudo-label store")
    assert not rec.done and rec.check({"seed": 0}) is None
    assert not rec.path.exists()  # check writes nothing
    rec.claim({"seed": 0, "opts": {"weights": "authors", "r0": 2.0}})
    assert rec.done and rec.check({"opts": {"r0": 2.0, "weights": "authors"}, "seed": 0}) is not None
    with pytest.raises(RecordMismatch) as err:
        rec.check({"seed": 0, "opts": {"weights": "paper", "r0": 2.0}, "extra": 1})
    msg = str(err.value)
    assert "params.json" in msg and str(rec.path.parent.name) in msg
    assert "opts.weights: 'authors' there, 'paper' now" in msg and "extra: (absent) there, 1 now" in msg
    assert err.value.path == rec.path and [k for k, _, _ in err.value.diff] == ["extra", "opts.weights"]
    assert json.loads(rec.path.read_text()) == {"seed": 0, "opts": {"weights": "authors", "r0": 2.0}}  # untouched


def test_a_record_raises_the_steps_own_error_with_its_advice(tmp_path):
    class CohortMismatch(RecordMismatch, RuntimeError):
        pass

    rec = KeyedRecord(tmp_path / "cohort.json", what="the synthetic cohort", error=CohortMismatch,
                      advice="Delete it.", indent=1, sort_keys=False)
    rec.write({"size": 64})
    with pytest.raises(RuntimeError, match=r"(?s)cohort.json: the synthetic cohort was made with other settings "
                                           r"\(size\):\n  size: 64 there, 32 now\nDelete it."):
        rec.check({"size": 32})


def test_a_record_under_a_field_compares_only_that_field(tmp_path):
    rec = KeyedRecord(tmp_path / "split.json", field="params", indent=1, sort_keys=False)
    rec.claim({"seed": 0}, {"params": {"seed": 0}, "split": {"train": ["p1"]}})
    assert rec.check({"seed": 0})["split"] == {"train": ["p1"]}
    with pytest.raises(RecordMismatch, match="seed: 0 there, 5 now"):
        rec.check({"seed": 5})


def test_a_damaged_record_is_named_with_what_rebuilds_it(tmp_path):
    path = tmp_path / "cohort.json"
    path.write_text('{"size": 6')  # cut short
    rec = KeyedRecord(path, rebuild="delete the cohort and rerun notebook 01")
    with pytest.raises(DamagedFile, match=r"cohort.json is damaged \(not valid JSON.*rerun notebook 01"):
        rec.read()
    path.write_text("[1, 2]")
    with pytest.raises(DamagedFile, match="a JSON list, not a record"):
        rec.check({})
    path.write_text('{"profile_hash": "x"}')
    with pytest.raises(DamagedFile, match="no 'profile' in it"):
        KeyedRecord(path, field="profile").read()


def test_the_file_names_are_unique_and_plain():
    names = [getattr(files, n) for n in files.__all__ if n != "METRICS_TABLES"]
    assert len(names) == len(set(names)) and all("/" not in n for n in names)
    assert set(files.METRICS_TABLES) <= set(names) and files.TABLE1_SCORES in files.METRICS_TABLES


# -- records written before the artifact store (bytes captured from the code of commit 0d28187) --------------------

OLD_COHORT_JSON = ('{\n "version": 2,\n "n_patients": 4,\n "size": 40,\n "frames": [\n  4,\n  5\n ],\n "seed": 0,\n'
                   ' "full_cycle": false,\n "test_fraction": 0.34,\n "val_fraction": 0.25\n}')
OLD_STORE_PARAMS = ('{\n  "format": 1,\n  "method": "t",\n  "pseudo_labels": {\n    "assemble": "sdf",\n'
                    '    "closing": 0,\n    "mode": "sequential",\n    "weights": "authors"\n  },\n'
                    '  "registration": "r1"\n}')
OLD_CONFIDENCE_PARAMS = ('{\n  "definition": {\n    "jacobian": false,\n    "r0_px": 2.0,\n    "units": "px",\n'
                         '    "version": 2\n  },\n  "weights": "authors"\n}')


def test_an_old_cohort_record_is_reused_and_the_new_one_has_its_bytes(tmp_path):
    from echo_utils import phantom
    from echo_utils.data import phantom_cohort

    root = tmp_path / "cohort"
    phantom.make_cohort(root, 4, size=40, frames=(4, 5), seed=0, test_fraction=0.34, val_fraction=0.25,
                        progress=False)
    assert (root / files.COHORT_FILE).read_text() == OLD_COHORT_JSON  # the new writer, the old bytes
    (root / files.COHORT_FILE).write_text(OLD_COHORT_JSON)
    mtime = (root / files.COHORT_FILE).stat().st_mtime_ns
    phantom.make_cohort(root, 4, size=40, frames=(4, 5), seed=0, test_fraction=0.34, val_fraction=0.25,
                        progress=False)
    assert (root / files.COHORT_FILE).stat().st_mtime_ns == mtime  # reused, not regenerated
    with pytest.raises(phantom_cohort.CohortMismatch, match=r"n_patients: 4 there, 5 now") as err:
        phantom.make_cohort(root, 5, size=40, frames=(4, 5), seed=0, test_fraction=0.34, val_fraction=0.25)
    assert isinstance(err.value, RecordMismatch) and err.value.path == root / files.COHORT_FILE


def test_an_old_pseudo_label_store_is_read_back_and_its_records_keep_their_bytes(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_pseudolabels import CentroidTranslation, grid_warp, moving_sequence

    from echo_utils import pseudolabels
    from echo_utils.pseudolabels.confidence import confidence_key

    assert confidence_key("authors") == "941404a41a1d"  # the folder name the old code gave
    seqs = [moving_sequence(t=5, patient="patient0001")]
    reg = CentroidTranslation()
    pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, method_name="t", registration_id="r1", warp=grid_warp,
                                  progress=False)
    conf = tmp_path / "confidence" / "941404a41a1d" / files.PARAMS_FILE
    assert (tmp_path / files.PARAMS_FILE).read_text() == OLD_STORE_PARAMS and conf.read_text() == OLD_CONFIDENCE_PARAMS
    (tmp_path / files.PARAMS_FILE).write_text(OLD_STORE_PARAMS)
    conf.write_text(OLD_CONFIDENCE_PARAMS)
    pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, method_name="t", registration_id="r1", warp=grid_warp,
                                  progress=False)
    assert reg.calls == 1, "the old store was read back, not recomputed"
    with pytest.raises(pseudolabels.PseudoLabelCacheMismatch, match=r"method: 't' there, 'u' now"):
        pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, method_name="u", registration_id="r1",
                                      warp=grid_warp, progress=False)


def test_an_old_run_record_is_accepted_and_the_new_one_has_its_layout(tmp_path):
    from echo_utils.config import load_config
    from echo_utils.rundir import SettingsMismatch, check_settings, settings_record

    cfg = load_config(ROOT / "notebooks/params/ci.yaml")
    old = settings_record(cfg)
    (tmp_path / files.SETTINGS_FILE).write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")  # the old writer
    assert check_settings(tmp_path, settings_record(cfg), write=True) == old
    new = tmp_path / "new"
    new.mkdir()
    rec = check_settings(new, settings_record(cfg), write=True)
    assert (new / files.SETTINGS_FILE).read_text() == json.dumps(rec, indent=2, sort_keys=True) + "\n"
    other = load_config(ROOT / "notebooks/params/ci.yaml", {"registration": {"alpha": 0.25}})
    with pytest.raises(SettingsMismatch) as err:
        check_settings(tmp_path, settings_record(other))
    assert isinstance(err.value, RecordMismatch) and "registration.alpha" in str(err.value)
