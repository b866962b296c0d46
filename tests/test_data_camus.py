"""Readers (echo_utils.data.camus): small fixtures written in each real layout (real axis conventions and header
spacing), read back.

The fixture writers (:mod:`echo_fixtures`) use nibabel / SimpleITK directly, not the phantom's writer, so that a
wrong axis order in the reader cannot be hidden by the same mistake in the writer.  The study's cohort, split and
selections are tested in ``test_data_cohort.py``; the paper protocol on CAMUS + TED in ``test_paper_protocol.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from echo_fixtures import APEX, SX, SY, H, T, W, write_legacy_patient, write_nifti_patient, write_ted_patient
from echo_fixtures import mhd as _mhd
from echo_fixtures import nii as _nii
from echo_fixtures import sequence as _sequence

from echo_utils.data import camus
from echo_utils.data.camus import EchoDataError


def _check_orientation(seq, T, la=True):
    assert seq.images.shape == (T, H, W) and seq.images.dtype == np.float32
    assert seq.spacing == pytest.approx((SY, SX))
    assert np.all(seq.images[(slice(None), *APEX)] == 1.0)  # the marker is at the apex: top rows, centre
    assert seq.images[:, 5:, :].max() < 100 / 255 + 1e-6
    for lab in seq.labels.values():
        assert lab.shape == (H, W) and lab.dtype == np.uint8
        assert np.all(lab[APEX] == 2)
        assert np.all(lab[30:36, 8:22] == (3 if la else 0))


# --- the three layouts --------------------------------------------------------------------------------------------


def test_nifti_2023(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    assert camus.detect_layout(d, "2CH") == "nifti2023"
    seq = camus.load_sequence(d, "4CH")
    _check_orientation(seq, T)
    assert (seq.patient, seq.view, seq.ed, seq.es, seq.key) == ("patient0001", "4CH", 0, T - 1, "patient0001_4CH")
    assert sorted(seq.labels) == [0, T - 1]
    assert seq.dense_kind == "interpolated"  # real CAMUS half_sequence_gt is interpolated, not manual
    assert seq.dense.shape == (T, H, W) and np.all(seq.dense[(slice(None), *APEX)] == 2)
    assert (seq.dense[:, 8:22, 15] == 1).sum(axis=1).tolist() == [14 - t for t in range(T)]
    assert seq.info == dict(ED=1, ES=T, NbFrame=T, Sex="F", Age=61, ImageQuality="Good", EF=52, FrameRate=25)


def test_nifti_dense_kind_from_cfg_and_optional(tmp_path):
    seq = camus.load_sequence(write_nifti_patient(tmp_path, "patient0001", cfg_items={"DenseKind": "exact"}), "2CH")
    assert seq.dense_kind == "exact"
    seq = camus.load_sequence(write_nifti_patient(tmp_path, "patient0002", dense=False), "2CH")
    assert seq.dense is None and seq.dense_kind is None


def test_legacy_mhd(tmp_path):
    d = write_legacy_patient(tmp_path, "patient0001")
    assert camus.detect_layout(d, "2CH") == "mhd_legacy"
    seq = camus.load_sequence(d, "2CH")
    _check_orientation(seq, T)
    assert seq.dense is None and seq.dense_kind is None
    assert seq.info["LVedv"] == 120.5 and seq.info["LVef"] == 50.1


def test_ted(tmp_path):
    d = write_ted_patient(tmp_path, "patient001")
    assert camus.detect_layout(d, "4CH") == "ted"
    seq = camus.load_ted_sequence(d)
    _check_orientation(seq, 9, la=False)
    assert (seq.view, seq.ed, seq.es, seq.dense_kind) == ("4CH", 0, 4, "manual")
    np.testing.assert_array_equal(seq.labels[4], seq.dense[4])
    # load_sequence recognises a TED folder too
    assert camus.load_sequence(d, "4CH").dense_kind == "manual"


def test_iter_sequences_and_splits(tmp_path):
    root = tmp_path / "camus"
    for i in (3, 1, 2):
        write_nifti_patient(root, f"patient{i:04d}")
    (root / "database_split").mkdir()
    for name, pats in (("training", [1, 3]), ("validation", []), ("testing", [2])):
        (root / "database_split" / f"subgroup_{name}.txt").write_text("".join(f"patient{i:04d}\n" for i in pats))
    keys = [s.key for s in camus.iter_sequences(root)]
    assert keys == [f"patient{i:04d}_{v}" for i in (1, 2, 3) for v in ("2CH", "4CH")]
    assert [s.key for s in camus.iter_sequences(root, "test", views=("4CH",))] == ["patient0002_4CH"]
    assert camus.read_split(root) == {"train": ["patient0001", "patient0003"], "val": [], "test": ["patient0002"]}

    legacy = tmp_path / "legacy"
    write_legacy_patient(legacy, "patient0001", "testing")
    write_legacy_patient(legacy, "patient0002", "training")
    assert camus.read_split(legacy) == {"train": ["patient0002"], "val": [], "test": ["patient0001"]}
    assert len(list(camus.iter_sequences(legacy, ["patient0002"]))) == 2

    ted = tmp_path / "ted"
    write_ted_patient(ted, "patient002")
    write_ted_patient(ted, "patient001")
    assert [s.patient for s in camus.iter_sequences(ted)] == ["patient001", "patient002"]


# --- resizing -----------------------------------------------------------------------------------------------------


def test_resize_sequence(tmp_path):
    seq = camus.load_sequence(write_nifti_patient(tmp_path, "patient0001"), "2CH")
    big = camus.resize_sequence(seq, (80, 90))
    assert big.images.shape == (T, 80, 90) and big.dense.shape == (T, 80, 90)
    assert big.spacing == pytest.approx((SY * H / 80, SX * W / 90))
    # physical extent preserved
    assert big.spacing[0] * 80 == pytest.approx(seq.spacing[0] * H)
    assert big.spacing[1] * 90 == pytest.approx(seq.spacing[1] * W)
    assert 0.0 <= big.images.min() and big.images.max() <= 1.0
    # nearest for labels: no new values, areas in mm^2 preserved to within a pixel row
    assert set(np.unique(big.dense)) == set(np.unique(seq.dense))
    a0 = (seq.dense[0] == 1).sum() * np.prod(seq.spacing)
    a1 = (big.dense[0] == 1).sum() * np.prod(big.spacing)
    assert a1 == pytest.approx(a0, rel=0.1)
    assert np.all(big.labels[0][:4, 40:50] == 2)  # apex marker still at the top
    assert camus.resize_sequence(seq, 512).shape == (512, 512)


# --- errors -------------------------------------------------------------------------------------------------------


def test_error_missing_file(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    (d / "patient0001_2CH_ES_gt.nii.gz").unlink()
    with pytest.raises(EchoDataError, match=r"patient0001_2CH_ES_gt\.nii\.gz: missing file"):
        camus.load_sequence(d, "2CH")
    (d / "Info_4CH.cfg").unlink()
    with pytest.raises(EchoDataError, match=r"Info_4CH\.cfg: missing"):
        camus.load_sequence(d, "4CH")


def test_error_unknown_layout(tmp_path):
    d = tmp_path / "patient0001"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(EchoDataError, match="unknown layout"):
        camus.load_sequence(d, "2CH")
    with pytest.raises(EchoDataError, match="unknown dataset layout"):
        list(camus.iter_sequences(tmp_path / "patient0001"))
    with pytest.raises(EchoDataError, match="not found"):
        camus.load_sequence(tmp_path / "nope", "2CH")


def test_error_nbframe(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001", cfg_items={"NbFrame": T + 2})
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: NbFrame = {T + 2} but .* has {T} frames"):
        camus.load_sequence(d, "2CH")


@pytest.mark.parametrize("key,value", [("ED", 0), ("ES", T + 1)])
def test_error_ed_es_range(tmp_path, key, value):
    d = write_nifti_patient(tmp_path, "patient0001", cfg_items={key: value})
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: {key} = {value} is out of range 1\.\.{T}"):
        camus.load_sequence(d, "2CH")


@pytest.mark.parametrize("key,value", [("ED", "one"), ("NbFrame", "five"), ("ES", 4.5), ("NbFrame", "true")])
def test_non_integer_frame_numbers_name_the_cfg_and_the_key(tmp_path, key, value):
    d = write_nifti_patient(tmp_path, "patient0001", cfg_items={key: value})
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: {key} = .*{value}.* is not a frame number"):
        camus.load_sequence(d, "2CH")


def test_frame_number_names_a_missing_key():
    assert camus.frame_number({"ED": 3}, "ED", "Info_2CH.cfg") == 3
    with pytest.raises(EchoDataError, match=r"Info_2CH\.cfg: missing key 'ES'"):
        camus.frame_number({"ED": 3}, "ES", "Info_2CH.cfg")


def test_ed_es_order_contradicting_the_half_sequence_names_the_cfg_and_the_sequence(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001", cfg_items={"ED": T, "ES": 1})  # swapped in the cfg
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: ED = {T} is not before ES = 1, but "
                       r"patient0001_2CH_half_sequence.nii.gz is a half sequence from ED to ES"):
        camus.load_sequence(d, "2CH")


def test_sparse_labels_contradicting_the_dense_labels_name_the_cfg_and_the_dense_file(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    _, lab = _sequence(T)
    for key, t in (("ED", T - 1), ("ES", 0)):  # the ED/ES label files swapped: each matches the other frame
        _nii(d / f"patient0001_2CH_{key}_gt.nii.gz", lab[t])
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: ED = 1, ES = {T} contradict the dense labels "
                       r"patient0001_2CH_half_sequence_gt.nii.gz"):
        camus.load_sequence(d, "2CH")
    seq = camus.load_sequence(d, "4CH")  # the control: the untouched view reads
    assert (seq.ed, seq.es) == (0, T - 1)


def test_error_shape_mismatch(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    _nii(d / "patient0001_2CH_half_sequence_gt.nii.gz", np.zeros((T, H, W - 1), np.uint8))
    with pytest.raises(EchoDataError, match=r"half_sequence_gt\.nii\.gz: shape .* differs from the image"):
        camus.load_sequence(d, "2CH")
    d = write_legacy_patient(tmp_path, "patient0002")
    _mhd(d / "patient0002_2CH_ED_gt.mhd", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(EchoDataError, match=r"patient0002_2CH_ED_gt\.mhd: shape"):
        camus.load_sequence(d, "2CH")


def test_error_label_values(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    bad = _sequence()[1][T - 1]
    bad[5, 5] = 7
    _nii(d / "patient0001_4CH_ES_gt.nii.gz", bad)
    with pytest.raises(EchoDataError, match=r"ES_gt\.nii\.gz \(patient patient0001, 4CH ES label\): label values "
                       r"\[7\] outside"):
        camus.load_sequence(d, "4CH")


@pytest.mark.parametrize("layout", ["nifti2023", "mhd_legacy"])
def test_error_all_background_reference(tmp_path, layout):
    """Issue 'runs that survive...': an all-background ED label is refused by the reader, naming file and patient
    (it used to pass and fail later in a volume computation without naming either)."""
    empty = np.zeros((H, W), np.uint8)
    if layout == "nifti2023":
        d = write_nifti_patient(tmp_path, "patient0007")
        _nii(d / "patient0007_2CH_ED_gt.nii.gz", empty)
        name = r"patient0007_2CH_ED_gt\.nii\.gz"
    else:
        d = write_legacy_patient(tmp_path, "patient0007")
        _mhd(d / "patient0007_2CH_ED_gt.mhd", empty)
        name = r"patient0007_2CH_ED_gt\.mhd"
    with pytest.raises(EchoDataError, match=name + r" \(patient patient0007, 2CH ED label\): reference label is all "
                       "background; a reference needs the LV cavity"):
        camus.load_sequence(d, "2CH")
    assert camus.load_sequence(d, "4CH").labels  # the other view of the same patient is fine (the control)


def test_error_reference_without_lv_cavity(tmp_path):
    """A label map with structures but no LV cavity, and a TED frame without it, are refused with the frame."""
    d = write_nifti_patient(tmp_path, "patient0001")
    lab = _sequence()[1]
    es = lab[T - 1].copy()
    es[es == 1] = 0
    _nii(d / "patient0001_4CH_ES_gt.nii.gz", es)
    with pytest.raises(EchoDataError, match=r"4CH ES label\): reference label has no LV cavity \(label 1\)"):
        camus.load_sequence(d, "4CH")
    d = write_ted_patient(tmp_path, "patient001")
    gt = _sequence(9)[1]
    gt[gt == 3] = 0
    gt[6][gt[6] == 1] = 0
    _mhd(d / "patient001_4CH_sequence_gt.mhd", gt)
    with pytest.raises(EchoDataError, match=r"patient001_4CH_sequence_gt\.mhd \(patient patient001, 4CH dense "
                       r"labels\): reference label has no LV cavity \(label 1\) at frame\(s\) \[7\]"):
        camus.load_ted_sequence(d)


def test_ted_map_shipped_and_checked(tmp_path):
    """The authors' data/ted2camus.csv ships with the package: 94 TED ids, each to one CAMUS id."""
    m = camus.read_ted_map()
    assert len(m) == 94 and len(set(m.values())) == 94
    assert (m["patient001"], m["patient002"]) == ("patient0002", "patient0004")
    assert not {"patient019", "patient032", "patient034", "patient098"} & set(m)  # the 4 in the CAMUS test set
    assert "ted2camus.csv" in camus.TED_MAP_FILE.read_text().splitlines()[1]  # the source is named in the file
    bad = tmp_path / "map.csv"
    bad.write_text("ted_id,camus_id\n1,2\n3,2\n")
    with pytest.raises(EchoDataError, match=r"map\.csv, line 3: CAMUS id 2 listed twice"):
        camus.read_ted_map(bad)
    bad.write_text("ted_id,camus_id\n1,x\n")
    with pytest.raises(EchoDataError, match=r"map\.csv, line 2: expected two integers"):
        camus.read_ted_map(bad)


def test_error_nan_and_empty_images(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    img = _sequence()[0].astype(np.float32)
    img[1, 3, 3] = np.nan
    _nii(d / "patient0001_2CH_half_sequence.nii.gz", img)
    with pytest.raises(EchoDataError, match=r"half_sequence\.nii\.gz: image contains NaN"):
        camus.load_sequence(d, "2CH")
    _nii(d / "patient0001_4CH_half_sequence.nii.gz", np.zeros((T, H, W), np.uint8))
    with pytest.raises(EchoDataError, match=r"half_sequence\.nii\.gz: empty image"):
        camus.load_sequence(d, "4CH")
    d = write_ted_patient(tmp_path, "patient001")
    _mhd(d / "patient001_4CH_sequence.mhd", np.zeros((9, H, W), np.uint8))
    with pytest.raises(EchoDataError, match="empty image"):
        camus.load_ted_sequence(d)


def test_no_partial_dataset(tmp_path):
    """A bad file anywhere makes the whole read fail: no partially read dataset is returned."""
    root = tmp_path / "camus"
    write_nifti_patient(root, "patient0001")
    d = write_nifti_patient(root, "patient0002", cfg_items={"ES": 99})
    with pytest.raises(EchoDataError, match=str(d / "Info_2CH.cfg").replace(".", r"\.")):
        list(camus.iter_sequences(root))


def test_public_names_stay_importable():
    """The readers live in echo_utils.data; echo_utils.camus and echo_utils.phantom re-export the contract's objects
    (DESIGN.md), not the study's selections, which are echo_utils.data.cohort's alone."""
    from echo_utils import camus as public_camus
    from echo_utils import phantom
    from echo_utils.data import phantom_cohort

    for name in ("EchoSequence", "load_sequence", "load_ted_sequence", "iter_sequences", "resize_sequence"):
        assert getattr(public_camus, name) is getattr(camus, name)
    assert hasattr(camus, "read_ted_map") and not hasattr(public_camus, "read_ted_map")
    for name in ("load_split", "iter_split", "study_split", "study_sequences", "study_root"):
        assert not hasattr(public_camus, name)
    assert phantom.make_cohort is phantom_cohort.make_cohort
