"""The paper profile's path on CAMUS + TED fixtures in the real layouts, end to end (the authors' Fig. 2 protocol).

CAMUS 2023 NIfTI and TED MHD fixtures (``echo_fixtures.write_paper_study``: ten CAMUS patients, four TED patients
of which three map to CAMUS training patients through the authors' ``ted2camus.csv``) go through what notebooks
02-03 call with ``notebooks/params/paper.yaml``: the study's training data, the registration's exclusions, a (tiny)
registration training, the evaluation sequences, Eq. 1 pseudo-labels with the paper's fusion settings and the
Fig. 2 scores.  The test fails if a TED patient reaches the registration's training pairs, if the evaluation
seeds are the TED labels themselves (ED/ES would score as perfect copies), or if the TED frames are not the ones
scored.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from echo_fixtures import PAPER_SPLIT, PAPER_T, PAPER_TED, write_paper_study

import echo_utils.registration.train as reg_train
from echo_utils import fusion, registration
from echo_utils.config import load_config
from echo_utils.rundir import RunPaths
from echo_utils.data import cohort as cohort_data
from echo_utils.study import Study, stages
from echo_utils.report import cohort, fig2

TINY = {  # the paper's registration at a test's scale (64x64 images, 4x4 control cells, a few iterations)
    "data": {"resize": 64},
    "registration": {"grid_spacing": 16, "kernels": 4, "iterations": 4, "batch_size": 8, "validate_every": 2,
                     "checkpoint_every": 2},
    "device": "cpu",
}


@pytest.fixture
def paper(tmp_path, monkeypatch):
    camus_root, ted_root = write_paper_study(tmp_path)
    monkeypatch.setenv("CAMUS_ROOT", str(camus_root))
    monkeypatch.setenv("TED_ROOT", str(ted_root))
    return load_config("notebooks/params/paper.yaml", TINY), RunPaths(tmp_path / "run")


def test_paper_profile_states_the_authors_fusion(paper):
    cfg, _ = paper
    pl = cfg.pseudo_labels
    assert (pl.mode, pl.weights, pl.assemble, pl.closing) == ("sequential", "authors", "argmax", 5)
    assert cfg.data.ted_root and cfg.data.ted_map is None  # the shipped mapping


def test_paper_protocol_end_to_end(paper, monkeypatch):
    cfg, paths = paper
    ted_camus = {c for c, _ in PAPER_TED.values() if c}  # patient0002, patient0004, patient0005

    # --- data selection and exclusion (notebook 02) ---
    study = Study.of(cfg, paths)
    train = study.sequences("train")
    val = study.sequences("val")
    assert ted_camus <= {s.patient for s in train}  # the TED patients are CAMUS training patients ...
    exclude = list(study.cohort.exclusions)
    assert ted_camus <= set(exclude)  # ... and are left out

    seen: set[str] = set()
    real_pairs = reg_train.frame_pairs

    def spy(sequences, **kw):  # records the patients of every pair the training draws from
        pairs = real_pairs(sequences, **kw)
        seen.update(sequences[i].patient for i in np.unique(pairs[:, 0]))
        return pairs

    monkeypatch.setattr(reg_train, "frame_pairs", spy)
    model = registration.registration_from_config("dlir", cfg.registration, train=train, val=val,
                                                  run_dir=paths.registration, device="cpu", exclude_patients=exclude)
    assert seen, "the spy saw no training pair"
    assert not seen & ted_camus, f"TED patients reached registration training: {sorted(seen & ted_camus)}"
    # every other training/validation patient is used (patient0008 and patient0010 are TED patients too in the
    # authors' mapping, without TED files here: they are left out all the same)
    assert seen == (set(PAPER_SPLIT["train"]) | set(PAPER_SPLIT["val"])) - set(exclude)
    assert seen == {"patient0003", "patient0006", "patient0007"}
    # the registration's log names them
    (key_file,) = paths.registration.glob("*/key.json")
    assert ted_camus <= set(json.loads(key_file.read_text())["exclude"])

    # --- evaluation selection and the disjointness check on CAMUS ids (notebook 03) ---
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = stages.evaluation_set(study)
    assert any("patient019" in str(w.message) for w in caught)  # the unmapped TED patient is counted, not used
    assert {s.patient for s in ev} == ted_camus and all(s.view == "4CH" for s in ev)
    cohort_data.check_unseen(train + val, ev, exclude)
    with pytest.raises(cohort_data.EchoDataError, match="in the registration's training data"):
        cohort_data.check_unseen(train + val, ev)  # the control: without the exclusions the check fires
    assert int((cohort.frame_matching(ev)["match"] == "phase").sum()) == 1

    # --- pseudo-labels with the paper's fusion and the Fig. 2 scores ---
    labels = {s.key: fusion.pseudo_labels(s, model, config=cfg.pseudo_labels) for s in ev}
    for s in ev:  # propagation starts from the CAMUS seeds, not from the TED reference
        np.testing.assert_array_equal(labels[s.key].forward[s.ed], s.labels[s.ed])
        np.testing.assert_array_equal(labels[s.key].backward[s.es], s.labels[s.es])
    scores = fig2.score_pseudo_labels(ev, labels, classes=(1, 2), progress=False)
    assert set(scores["structure"]) >= {"LV", "MYO"} and "LA" not in set(scores["structure"])
    lv = scores[(scores["structure"] == "LV")]
    assert sorted(set(lv["frame"])) == list(range(PAPER_T))  # every frame ED...ES of the CAMUS half-sequence
    for kind in ("forward", "backward", "bidirectional"):
        at = lv[lv["kind"] == kind]
        ed_es = at[at["frame"].isin([0, PAPER_T - 1])]
        assert len(ed_es) == 2 * len(ev)
        assert (ed_es["dice"] < 1).all(), f"{kind}: an ED/ES frame is a perfect copy of its reference"
        assert (ed_es["dice"] > 0.6).all()  # the same heart, annotated twice
