"""The pseudo-label store: CAMUS-named NIfTI files per sequence, keyed by the registration's fingerprint.

:func:`generate_pseudo_labels` computes the pseudo-labels of a whole dataset once and writes them as
``patientXXXX_<view>_half_sequence_<kind>.nii.gz`` (the CAMUS naming, which nnU-Net's export reads back); the folder's
``params.json`` records the method, the registration's fingerprint and the pseudo-label settings, so that labels
made with other settings are refused, never mixed.  Writes are atomic; a rerun reads back what is written.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..artifacts.files import PARAMS_FILE
from ..artifacts.record import KeyedRecord, RecordMismatch
from ..config import display_path
from ..labels import LABEL_NAMES
from ..registration.inference import MemoizedRegistration
from ..safe_load import DamagedFile
from .confidence import sequence_confidence
from .nifti import save_nifti
from .propagate import KINDS, PseudoLabels, Registration, _resolve_options, _seq_name, pseudo_labels

__all__ = [
    "PseudoLabelCacheMismatch",
    "pseudo_label_path",
    "save_pseudo_labels",
    "load_pseudo_labels",
    "registration_fingerprint",
    "params_record",
    "PseudoLabelSet",
    "generate_pseudo_labels",
]

_FORMAT_VERSION = 1


class PseudoLabelCacheMismatch(RecordMismatch):
    """A pseudo-label folder already holds labels made with other parameters (or another registration): the artifact
    store's :class:`~echo_utils.artifacts.record.RecordMismatch` of its ``params.json``."""


def _split_key(seq) -> tuple[str, str]:
    if isinstance(seq, str):
        patient, _, view = seq.rpartition("_")
        if not patient or view not in ("2CH", "4CH"):
            raise ValueError(f"sequence key {seq!r} is not of the form 'patientXXXX_2CH' / 'patientXXXX_4CH'")
        return patient, view
    return seq.patient, seq.view


def pseudo_label_path(root: str | Path, seq, kind: str) -> Path:
    """``root/patientXXXX/patientXXXX_<view>_half_sequence_<kind>.nii.gz`` (``seq``: sequence or its key)."""
    if kind not in KINDS:
        raise ValueError(f"unknown pseudo-label kind {kind!r}; expected one of {KINDS}")
    patient, view = _split_key(seq)
    return Path(root) / patient / f"{patient}_{view}_half_sequence_{kind}.nii.gz"


def save_pseudo_labels(labels: PseudoLabels, root: str | Path, seq) -> dict[str, Path]:
    """Write the three kinds as NIfTI (atomically) under ``root`` (= ``paths.pseudo_labels / <method>``)."""
    shape = tuple(np.asarray(seq.images).shape)
    if labels.forward.shape != shape:
        raise ValueError(f"{_seq_name(seq)}: pseudo-labels {labels.forward.shape} do not match the images {shape}")
    written = {}
    for kind, arr in labels.items():
        path = pseudo_label_path(root, seq, kind)
        save_nifti(path, arr, seq.spacing)
        written[kind] = path
    return written


def load_pseudo_labels(root: str | Path, seq) -> PseudoLabels:
    """Read the pseudo-labels of ``seq`` (an ``EchoSequence`` or its key) from ``root``
    (= ``paths.pseudo_labels/<method>``).

    Returns uint8 ``(T, H, W)`` arrays; with an ``EchoSequence`` their shape is checked against its images.
    A file that cannot be read whole (truncated, corrupt), is not a 3D volume or holds values that are not labels
    is a :class:`~echo_utils.safe_load.DamagedFile` naming it; rerunning notebook 03 rebuilds it
    (:func:`generate_pseudo_labels` recomputes a damaged sequence). Another shape than the images is a
    ``ValueError`` (the labels of another sequence, never overwritten).
    """
    from ..safe_load import read_nifti, rerun_hint

    out = {}
    for kind in KINDS:
        path = pseudo_label_path(root, seq, kind)
        if not path.is_file():
            raise FileNotFoundError(f"pseudo-label file {path} does not exist; "
                                    "run notebook 03 (generate_pseudo_labels)")
        arr = read_nifti(path, rebuild=lambda: rerun_hint(path, "03"))
        if arr.ndim != 3:
            _damaged(path, f"expected a 3D (W,H,T) volume, got shape {arr.shape}")
        if arr.dtype.kind not in "ui" or (arr.size and (arr.min() < 0 or arr.max() >= len(LABEL_NAMES))):
            _damaged(path, f"{arr.dtype} values in [{arr.min()}, {arr.max()}] are not labels")
        out[kind] = np.ascontiguousarray(np.transpose(arr, (2, 1, 0))).astype(np.uint8)
        if not isinstance(seq, str) and out[kind].shape != tuple(np.asarray(seq.images).shape):
            raise ValueError(f"{path}: shape {out[kind].shape} does not match the sequence images "
                             f"{np.asarray(seq.images).shape}")  # another sequence's labels: not rebuilt over
    return PseudoLabels(**out)


def _damaged(path: Path, problem: str) -> None:
    from ..safe_load import rerun_hint

    raise DamagedFile(f"{display_path(path)} is damaged ({problem}); {rerun_hint(path, '03')}", path)


def registration_fingerprint(registration) -> str:
    """A short hash that identifies a registration: its class, its weights (a module) and its simple attributes
    (except those its class names in ``runtime_attributes``: how fast, not what, e.g. elastix's ``workers``)."""
    if isinstance(registration, MemoizedRegistration):
        registration = registration.registration
    h = hashlib.sha256(type(registration).__qualname__.encode())
    state = getattr(registration, "state_dict", None)
    if callable(state):
        for k, v in sorted(state().items()):
            h.update(k.encode())
            h.update(np.ascontiguousarray(v.detach().cpu().float().numpy()).tobytes())
    attrs = {}
    if hasattr(registration, "__dict__"):
        speed = set(getattr(type(registration), "runtime_attributes", ()))
        attrs = {k: v for k, v in sorted(vars(registration).items())
                 if isinstance(v, (int, float, str, bool, tuple)) and k not in speed}
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _params_record(method: str, registration_id: str, opts: dict) -> dict:
    return {"format": _FORMAT_VERSION, "method": method, "registration": registration_id, "pseudo_labels": opts}


def params_record(out_dir: str | Path) -> KeyedRecord:
    """``out_dir/params.json``: the settings a pseudo-label store was made with (method, registration fingerprint,
    pseudo-label options), written as ``json.dumps(indent=2, sort_keys=True)`` before the first label; labels made
    with other settings are a :class:`PseudoLabelCacheMismatch`, never mixed in."""
    from ..safe_load import rerun_hint

    path = Path(out_dir) / PARAMS_FILE
    return KeyedRecord(path, what="the pseudo-label store", error=PseudoLabelCacheMismatch,
                       advice=f"Refusing to mix them: use another method name or run directory, or delete "
                              f"{display_path(out_dir)}.",
                       rebuild=lambda: rerun_hint(path, "03", delete=Path(out_dir)), indent=2, sort_keys=True)


def _check_params(out_dir: Path, record: dict) -> None:
    params_record(out_dir).claim(record)


class PseudoLabelSet(dict):
    """``{sequence key: PseudoLabels}`` of one :func:`generate_pseudo_labels` call, and what the store did.

    Attributes
    ----------
    method : the method name the labels were made with.
    out_dir : the store folder (``None``: computed in memory, nothing written).
    n_sequences : how many sequences were asked for.
    read_back : keys of the sequences read from the store (not recomputed), in input order.
    recomputed : keys whose stored files were damaged and were computed again.

    :func:`echo_utils.report.pseudo_labels.store_summary` says it in one line for the notebook.
    """

    def __init__(self, labels=(), *, method: str, out_dir: Path | None, n_sequences: int,
                 read_back: tuple[str, ...] = (), recomputed: tuple[str, ...] = ()):
        super().__init__(labels)
        self.method, self.out_dir, self.n_sequences = method, out_dir, n_sequences
        self.read_back, self.recomputed = tuple(read_back), tuple(recomputed)


def generate_pseudo_labels(
    sequences: Iterable,
    registration: Registration,
    out_dir: str | Path | None,
    *,
    cfg_pl=None,
    method_name: str = "dlir",
    registration_id: str | None = None,
    warp: Callable | None = None,
    batch_size: int | None = 64,
    progress: bool = True,
) -> PseudoLabelSet:
    """Pseudo-labels for a whole dataset, cached as NIfTI under ``out_dir`` (= ``paths.pseudo_labels / method``).

    ``out_dir/params.json`` records the method, ``registration_id`` (default :func:`registration_fingerprint`) and
    the pseudo-label settings; a folder made with other values is a :class:`PseudoLabelCacheMismatch`. Sequences
    whose three files already exist are read back instead of recomputed. ``out_dir=None`` computes without writing.
    Newly computed sequences also get their confidence map (:mod:`.confidence`) written beside the labels; a store
    written before that gets it on first read (:func:`~echo_utils.pseudolabels.confidence.sequence_confidence`).

    Returns a :class:`PseudoLabelSet`: ``{sequence key: PseudoLabels}`` in input order, with the keys read back from
    the store (``read_back``) and those recomputed over damaged files (``recomputed``). It prints nothing (the damaged
    file's note aside, on stderr); :func:`echo_utils.report.pseudo_labels.store_summary` says what was read back.
    """
    from tqdm.auto import tqdm

    sequences = list(sequences)
    opts = _resolve_options(cfg_pl)
    if out_dir is not None:
        out_dir = Path(out_dir)
        rid = registration_id or registration_fingerprint(registration)
        _check_params(out_dir, _params_record(method_name, rid, opts))
    result: dict[str, PseudoLabels] = {}
    read_back, recomputed = [], []
    for seq in tqdm(sequences, desc=f"pseudo-labels ({method_name})", disable=not progress, unit="seq"):
        key = _seq_name(seq)
        if out_dir is not None and all(pseudo_label_path(out_dir, seq, k).is_file() for k in KINDS):
            try:
                result[key] = load_pseudo_labels(out_dir, seq)
                read_back.append(key)
                continue
            except DamagedFile as exc:  # disk damage or a hand edit: computed again (the same labels)
                print(f"note: {str(exc).split(';')[0]}; computing {key} again", file=sys.stderr)
                recomputed.append(key)
        pl = pseudo_labels(seq, registration, warp=warp, batch_size=batch_size, **opts)
        if out_dir is not None:
            save_pseudo_labels(pl, out_dir, seq)
            sequence_confidence(out_dir, seq, pl, weights=opts["weights"])  # beside the labels (.confidence)
        result[key] = pl
    return PseudoLabelSet(result, method=method_name, out_dir=out_dir, n_sequences=len(sequences),
                          read_back=read_back, recomputed=recomputed)
