"""Tests of the vocabulary: one name and one colour per key, consistent with the label values."""

from __future__ import annotations

import re

import pytest

from echo_utils import labels as L


def test_label_values_are_camus():
    assert L.LABEL_NAMES == {0: "background", 1: "LV cavity", 2: "LV myocardium", 3: "left atrium"}
    assert L.LABEL_VALUES == {"background": 0, "LV cavity": 1, "LV myocardium": 2, "left atrium": 3}
    assert L.FOREGROUND == (1, 2, 3)


def test_structures_are_made_of_labels():
    assert L.STRUCTURES == {"LV": (1,), "MYO": (2,), "EPI": (1, 2), "LA": (3,)}
    assert set(L.STRUCTURE_NAMES) == set(L.STRUCTURES) == set(L.STRUCTURE_COLORS) == set(L.STRUCTURE_SHORT_NAMES)


def test_every_key_has_one_distinct_colour_and_a_name():
    groups = [L.STRUCTURE_COLORS, L.MODEL_COLORS, L.DIRECTION_COLORS, L.REGISTRATION_COLORS]
    keys = [k for g in groups for k in g]
    assert len(keys) == len(set(keys)), "a key is used in two groups"
    colours = [c for g in groups for c in g.values()]
    assert len(colours) == len(set(colours)), "two keys share a colour"
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    for k in keys:
        assert L.color(k) == L.COLORS[k]
        assert L.name(k) == L.NAMES[k]
    assert set(L.ALL_MODELS) | {L.REFERENCE} == set(L.MODEL_NAMES) == set(L.MODEL_COLORS)
    assert set(L.MODELS) & set(L.OPTIONAL_MODELS) == set() and L.ordered(L.ALL_MODELS[::-1]) == list(L.ALL_MODELS)
    assert set(L.DIRECTIONS) == set(L.DIRECTION_NAMES) == set(L.DIRECTION_COLORS)
    assert set(L.REGISTRATIONS) == set(L.REGISTRATION_NAMES) == set(L.REGISTRATION_COLORS)


def test_lookup_helpers():
    assert L.color(1) == L.LABEL_COLORS[1] == L.STRUCTURE_COLORS["LV"]
    assert L.name(3) == "left atrium" and L.name("unknown") == "unknown"
    with pytest.raises(KeyError, match="nope"):
        L.color("nope")
    assert L.color("nope", "#000000") == "#000000"
    assert L.rgba("#ff8000", 0.5) == "rgba(255,128,0,0.5)"
    assert L.rgba("LV", 1) == "rgba(214,39,40,1)"
    assert L.ordered(["3d_dense", "x", "reference", "CLAS", "2d_sparse"]) == ["CLAS", "2d_sparse", "3d_dense", "reference", "x"]


def test_structure_mask():
    import numpy as np

    lab = np.array([[0, 1, 2, 3]], np.uint8)
    assert L.structure_mask(lab, "EPI").tolist() == [[False, True, True, False]]
    assert L.structure_mask(lab, "LA").tolist() == [[False, False, False, True]]
    with pytest.raises(ValueError, match="unknown structure 'RV'"):
        L.structure_mask(lab, "RV")
