"""End-point error of a registration against the synthetic phantom's exact motion (the truth a loss cannot give).

A registration's loss says how well the warped image matches, not whether the field is the tissue's motion: raw
NCC on decorrelating speckle, for example, rewards a sub-pixel blur.  On the phantom the motion of every pixel is
known exactly (:func:`echo_utils.data.phantom.pair_displacement`), so a registration can be judged by its
**end-point error** (EPE), ``|u_registered(p) - u_true(p)|`` in pixels, averaged over the myocardium of the fixed
frame (where the motion is physical: the blood pools' motion is only a convention of the phantom).  The identity
(no motion) scores the mean true displacement: the control every registration must beat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..artifacts import files
from .inference import register

__all__ = ["PAIR_KINDS", "five_way", "phantom_pairs", "pair_epe", "endpoint_error", "phantom_epe",
           "gain_over_identity", "epe_monitor", "control_point_variation",
           "NetworkCheck", "network_check", "training_check", "choose_setting", "yardstick",
           "REFERENCES", "registration_comparison", "comparison_summary",
           "load_comparison", "summary_yardstick", "pair_seconds"]

#: ``'step'``: consecutive frames ``(t + 1, t)`` from ED to ES (what sequential propagation registers);
#: ``'ed_es'``: ``(ES, ED)`` and ``(ED, ES)`` (the largest motion of the half sequence)
PAIR_KINDS = ("step", "ed_es")

#: the classical references beside the network, in the order the comparisons list them (the registration keys of
#: :func:`~echo_utils.registration.factory.registration_from_config`)
REFERENCES = ("instance", "elastix", "optical_flow")


def phantom_pairs(root: str | Path, sequences: Sequence, kind: str = "step", *, label: int = 2) -> dict:
    """Frame pairs of phantom sequences with their exact displacement.

    Parameters
    ----------
    root : the synthetic cohort's folder (holding ``cohort.json``; the run's ``paths.data``).
    sequences : :class:`~echo_utils.camus.EchoSequence` of that cohort, with ``dense`` labels.
    kind : one of :data:`PAIR_KINDS`.
    label : the structure over which errors are averaged (2: myocardium).

    Returns
    -------
    ``{'fixed', 'moving'}`` float32 ``(N, H, W)``, ``'truth'`` float32 ``(N, 2, H, W)`` (pixels),
    ``'mask'`` bool ``(N, H, W)`` (``label`` in the fixed frame) and ``'info'`` (one dict per pair: key, fixed,
    moving, kind).
    """
    from ..data import phantom
    from ..data.phantom_cohort import patient_params

    if kind not in PAIR_KINDS:
        raise ValueError(f"unknown pair kind {kind!r}; expected one of {PAIR_KINDS}")
    fixed, moving, truth, mask, info = [], [], [], [], []
    for seq in sequences:
        if seq.dense is None:
            raise ValueError(f"{seq.key}: no dense labels; phantom_pairs needs a synthetic sequence")
        pp = patient_params(root, seq.patient)
        ed, es = int(seq.ed), int(seq.es)
        if kind == "step":
            step = 1 if es > ed else -1
            pairs = [(t + step, t) for t in range(ed, es, step)]
        else:
            pairs = [(es, ed), (ed, es)]
        size = seq.images.shape[1]
        for f, m in pairs:
            fixed.append(seq.images[f])
            moving.append(seq.images[m])
            truth.append(phantom.pair_displacement(pp, seq.view, size, f, m))
            mask.append(np.asarray(seq.dense[f]) == label)
            info.append({"key": seq.key, "fixed": f, "moving": m, "kind": kind})
    return {
        "fixed": np.stack(fixed).astype(np.float32),
        "moving": np.stack(moving).astype(np.float32),
        "truth": np.stack(truth).astype(np.float32),
        "mask": np.stack(mask),
        "info": info,
    }


def endpoint_error(registrations: Mapping[str, Callable], pairs: dict, *, batch_size: int = 32) -> "pd.DataFrame":  # noqa: F821
    """Per-pair end-point error (px) of each registration on :func:`phantom_pairs`.

    Returns a long table, one row per (registration, pair): ``registration``, ``key``, ``fixed``, ``moving``,
    ``kind``, ``epe_px`` (mean EPE over the mask), ``true_px`` (mean true displacement there: the identity's EPE)
    and ``fields`` is not stored (call :func:`~echo_utils.registration.inference.register` to get them).
    """
    import pandas as pd

    truth, mask = pairs["truth"], pairs["mask"]
    true_px = pair_epe(np.zeros_like(truth), truth, mask)
    rows = []
    for name, reg in registrations.items():
        epe = pair_epe(register(reg, pairs["fixed"], pairs["moving"], batch_size=batch_size), truth, mask)
        rows += [{"registration": name, **inf, "epe_px": float(e), "true_px": float(t)}
                 for inf, e, t in zip(pairs["info"], epe, true_px)]
    return pd.DataFrame(rows)


def gain_over_identity(videos: "pd.DataFrame", method: str, *, structures=("LV", "MYO"),  # noqa: F821
                       kinds=("forward", "bidirectional")) -> "pd.DataFrame":  # noqa: F821
    """What a registration adds over no registration: median per-video Dice of ``method`` and of ``'identity'``
    on the same videos, and their difference, per kind and structure.

    ``videos``: a per-video score table (:func:`echo_utils.report.fig2.per_video`) holding both methods, columns
    ``method, kind, structure, key, dice``.  Returns one row per (kind, structure): ``n_videos``, ``dice_<method>``,
    ``dice_identity``, ``gain`` (> 0: the registration helps).
    """
    import pandas as pd

    rows = []
    for kind in kinds:
        for s in structures:
            sel = videos[(videos["kind"] == kind) & (videos["structure"] == s)]
            a = sel[sel["method"] == method].set_index("key")["dice"]
            b = sel[sel["method"] == "identity"].set_index("key")["dice"]
            keys = a.index.intersection(b.index)
            if len(keys) == 0:
                continue
            ma, mb = float(a[keys].median()), float(b[keys].median())
            rows.append({"kind": kind, "structure": s, "n_videos": len(keys), f"dice_{method}": ma,
                         "dice_identity": mb, "gain": ma - mb})
    return pd.DataFrame(rows)


def phantom_epe(registrations: Mapping[str, Callable], root: str | Path, sequences: Sequence, *,
                kinds: Sequence[str] = PAIR_KINDS) -> tuple["pd.DataFrame", "pd.DataFrame"]:  # noqa: F821
    """:func:`endpoint_error` of every registration on every pair kind of the phantom ``sequences``.

    Returns the long per-pair table and its summary: mean EPE (px) per registration (rows) and pair kind (columns).
    """
    import pandas as pd

    table = pd.concat([endpoint_error(registrations, phantom_pairs(root, sequences, k)) for k in kinds],
                      ignore_index=True)
    summary = table.pivot_table(index="registration", columns="kind", values="epe_px", aggfunc="mean")
    return table, summary.reindex(list(registrations))


def pair_epe(u: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """End-point error of each pair, ``(N,)`` px: the mean over ``mask[i]`` ``(N, H, W)`` of
    ``|u[i] - truth[i]|`` (fields ``(N, 2, H, W)``, px). ``u = 0`` gives the identity's error, the true motion."""
    err = np.hypot(u[:, 0] - truth[:, 0], u[:, 1] - truth[:, 1])
    return np.array([err[i][mask[i]].mean() for i in range(len(err))], dtype=float)


def _mean_epe(u: np.ndarray, pairs: dict) -> float:
    return float(pair_epe(u, pairs["truth"], pairs["mask"]).mean())


def epe_monitor(root: str | Path, sequences: Sequence, kind: str = "step", *, prefix: str = "val") -> Callable:
    """A ``monitor`` for :func:`~echo_utils.registration.train.train_registration`: at every validation, the mean
    end-point error (px, myocardium) of the network on the :func:`phantom_pairs` of ``sequences`` (the validation
    patients), logged as ``<prefix>_<kind>_epe_px``, next to the identity's (``<prefix>_<kind>_identity_epe_px``,
    the same on every row): the learning curve against the exact motion.  It only reports: the kept weights are
    still chosen by the validation loss, which real data also has."""
    pairs = phantom_pairs(root, sequences, kind)
    identity = _mean_epe(np.zeros_like(pairs["truth"]), pairs)

    def monitor(model) -> dict:
        u = register(model, pairs["fixed"], pairs["moving"], batch_size=64)
        return {f"{prefix}_{kind}_epe_px": _mean_epe(u, pairs), f"{prefix}_{kind}_identity_epe_px": identity}

    return monitor


def control_point_variation(registration, fixed: np.ndarray, moving: np.ndarray, *, batch_size: int = 64) -> dict:
    """:func:`~echo_utils.registration.train.field_variation` of ``registration``'s control points on the pairs
    ``fixed``, ``moving`` (``(N, H, W)`` arrays, e.g. :func:`phantom_pairs`' test pairs)."""
    import torch

    from .train import field_variation

    f = torch.from_numpy(np.asarray(fixed, dtype=np.float32))[:, None]
    m = torch.from_numpy(np.asarray(moving, dtype=np.float32))[:, None]
    cps = []
    with torch.no_grad():
        for i in range(0, len(f), batch_size):
            cps.append(registration.control_points(f[i:i + batch_size], m[i:i + batch_size]).float())
    return field_variation(torch.cat(cps))


class NetworkCheck:
    """Is the trained network alive?  :func:`network_check`'s verdict: ``ok``, the reasons it fails
    (``problems``: ``'field variation unknown'``, ``'constant field'``, ``'EPE not below identity'``) and the numbers
    it was judged on (``field_variation``, its ``minimum``, ``epe`` and ``identity_epe`` in px or ``None``, and
    ``where``: the pairs).  In words and as a notebook box: :func:`echo_utils.report.registration.network_check_lines`
    and :func:`~echo_utils.report.registration.network_check_html`."""

    def __init__(self, ok: bool, problems: list[str], *, field_variation: float | None = None,
                 minimum: float | None = None, epe: float | None = None, identity_epe: float | None = None,
                 where: str = "the validation pairs"):
        self.ok, self.problems = bool(ok), list(problems)
        self.field_variation, self.minimum = field_variation, minimum
        self.epe, self.identity_epe, self.where = epe, identity_epe, where

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"NetworkCheck(ok={self.ok}, problems={self.problems})"


def network_check(field_variation: float | None, epe: float | None = None, identity_epe: float | None = None, *,
                  where: str = "the validation pairs", minimum: float | None = None) -> NetworkCheck:
    """The dead-network check: a network whose output field is (nearly) the same for every pair
    (``field_variation`` below :data:`~echo_utils.registration.train.FIELD_VARIATION_MIN`, see
    :func:`~echo_utils.registration.train.field_variation`), or whose end-point error ``epe`` is not below the
    identity's ``identity_epe`` (when both are given: the synthetic cohort), fails.  A missing field variation (a
    network not trained by :func:`~echo_utils.registration.train.train_registration`) fails too: it was not
    checked."""
    from .train import FIELD_VARIATION_MIN

    minimum = FIELD_VARIATION_MIN if minimum is None else float(minimum)
    problems = []
    if field_variation is None or not np.isfinite(field_variation):
        problems.append("field variation unknown")
    elif field_variation < minimum:
        problems.append("constant field")
    if epe is not None and identity_epe is not None and not epe < identity_epe:
        problems.append("EPE not below identity")
    return NetworkCheck(not problems, problems, field_variation=field_variation, minimum=minimum, epe=epe,
                        identity_epe=identity_epe, where=where)


def training_check(model) -> NetworkCheck:
    """:func:`network_check` of a trained network from its own record: the field variation of its kept weights
    across the validation pairs (``model.field_variation``) and, when the log has the phantom monitor's columns
    (:func:`epe_monitor`), its validation end-point error at the kept iteration against the identity's."""
    from .train import load_training_log

    epe = ident = None
    try:
        va = load_training_log(model).query("split == 'val'")
    except (FileNotFoundError, ValueError):
        va = None
    if va is not None and "val_step_epe_px" in va.columns and model.kept_iteration is not None:
        row = va[va.iteration == int(model.kept_iteration)]
        if len(row) and np.isfinite(row.val_step_epe_px.iloc[-1]):
            epe, ident = float(row.val_step_epe_px.iloc[-1]), float(row.val_step_identity_epe_px.iloc[-1])
    return network_check(getattr(model, "field_variation", None), epe, ident,
                         where=f"the validation pairs (kept iteration {model.kept_iteration})")


# ----------------------------------------------------------------------------------------------------------------
# Tuning the references, and the five-way comparison
# ----------------------------------------------------------------------------------------------------------------


def choose_setting(candidates: Sequence[Mapping], identity_epe: float, *, kind: str = "step") -> dict:
    """The setting of one reference with the lowest mean end-point error on ``kind`` pairs, and whether it beats
    the identity (no motion) on the same pairs.

    ``candidates``: one dict per setting tried, ``{'settings': {...}, kind: {'epe_px': float, ...}}`` (the rows of
    ``benchmarks/bench_reference_tuning.py``); candidates whose EPE is not finite (a diverged optimiser) are never
    chosen.  Returns ``{'settings', '<kind>_epe_px', 'identity_<kind>_epe_px', 'beats_identity'}``; a reference
    whose best setting does not beat ``identity_epe`` is still returned (the caller reports it), with
    ``beats_identity`` False.  Raises ``ValueError`` when no candidate has a finite EPE.
    """
    finite = [c for c in candidates if np.isfinite(float(c[kind]["epe_px"]))]
    if not finite:
        raise ValueError(f"choose_setting: none of the {len(candidates)} candidates has a finite {kind} EPE")
    best = min(finite, key=lambda c: float(c[kind]["epe_px"]))
    epe, ident = float(best[kind]["epe_px"]), float(identity_epe)
    return {"settings": dict(best["settings"]), f"{kind}_epe_px": epe, f"identity_{kind}_epe_px": ident,
            "beats_identity": bool(epe < ident)}


def yardstick(epe: Mapping[str, float], identity_epe: float, references: Sequence[str] = REFERENCES) -> str | None:
    """The reference the network is measured against: the one among ``references`` (present in ``epe``, name ->
    mean EPE in px) with the lowest end-point error, provided it is below the identity's ``identity_epe``; ``None``
    when no reference beats "no motion" (a reference that cannot beat the identity is no yardstick)."""
    ok = {r: float(epe[r]) for r in references if r in epe and np.isfinite(float(epe[r]))
          and float(epe[r]) < float(identity_epe)}
    return min(ok, key=ok.get) if ok else None


def _warm_up(registration, fixed: np.ndarray, moving: np.ndarray) -> None:
    """Register one pair untimed: imports (ITK takes seconds) and first-call set-up stay out of the timings."""
    register(registration, np.asarray(fixed[:1], dtype=np.float32), np.asarray(moving[:1], dtype=np.float32))


def registration_comparison(registrations: Mapping[str, Callable], pairs: dict, *, batch_size: int = 32,
                            kind: str | None = None, warm_up: bool = True) -> "pd.DataFrame":  # noqa: F821
    """Every registration on the same :func:`phantom_pairs`: one row per (registration, pair).

    Columns: ``registration``, the pair's ``info`` (``key, fixed, moving, kind``; ``kind`` overridden when given),
    ``epe_px`` (mean end-point error over the mask against ``pairs['truth']``, px), ``identity_epe_px`` (the mean true
    displacement there), ``ncc_before``, ``ncc_after``, ``ncc_gain`` (per-pair NCC of the fixed image with the moving
    image before / after warping, :func:`~echo_utils.registration.quality.evaluate_registration`), ``folding`` (the
    fraction of pixels with Jacobian determinant <= 0), ``max_displacement`` (px) and ``seconds`` (wall seconds per
    pair, measured in this call: batch time / batch size).  ``pairs``: ``{'fixed', 'moving'}`` ``(N, H, W)``,
    ``'truth'`` ``(N, 2, H, W)`` px, ``'mask'`` bool ``(N, H, W)``, ``'info'``.  With ``warm_up`` each registration
    first registers one pair untimed (imports and first-call set-up are not a per-pair cost).
    """
    import pandas as pd

    from .quality import evaluate_registration

    truth, mask = np.asarray(pairs["truth"], dtype=np.float32), np.asarray(pairs["mask"], dtype=bool)
    if truth.ndim != 4 or truth.shape[1] != 2 or mask.shape != (truth.shape[0], *truth.shape[2:]):
        raise ValueError(f"pairs: truth must be (N, 2, H, W) and mask (N, H, W); got {truth.shape}, {mask.shape}")
    if not mask.reshape(len(mask), -1).any(1).all():
        raise ValueError("pairs: every pair needs a non-empty mask (the structure the errors are averaged over)")
    identity_epe = pair_epe(np.zeros_like(truth), truth, mask)
    info = [dict(i, **({"kind": kind} if kind else {})) for i in pairs["info"]]
    tables = []
    for name, reg in registrations.items():
        if warm_up:
            _warm_up(reg, pairs["fixed"], pairs["moving"])
        table, u = evaluate_registration(reg, pairs["fixed"], pairs["moving"], batch_size=batch_size, info=info,
                                         return_displacements=True)
        table.insert(0, "registration", name)
        table["epe_px"] = pair_epe(u, truth, mask)
        table["identity_epe_px"] = identity_epe
        table["ncc_gain"] = table["ncc_after"] - table["ncc_before"]
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def comparison_summary(table: "pd.DataFrame", network: str) -> "pd.DataFrame":  # noqa: F821
    """One row per (pair kind, registration) of :func:`registration_comparison`'s per-pair ``table``, in the
    registrations' order: ``n_pairs``, ``epe_px`` (mean), ``epe_ratio_to_identity``, ``ncc_gain`` (mean),
    ``pairs_ncc_improved`` (fraction), ``folding`` (mean fraction of folded pixels), ``pairs_folded`` (fraction of
    pairs with any), ``seconds_per_pair`` (mean) and ``seconds_over_network`` (its seconds per pair over the
    ``network``'s on the same pairs in the same run: how many times slower; NaN without the network).  Every
    wall-clock column has ``second`` in its name, so comparisons of two runs' metrics can leave them out."""
    import pandas as pd

    order = list(dict.fromkeys(table["registration"]))
    rows = []
    for kind, sub in table.groupby("kind", sort=False):
        net = sub[sub["registration"] == network]["seconds"].mean() if network in set(sub["registration"]) else np.nan
        for name in order:
            t = sub[sub["registration"] == name]
            if t.empty:
                continue
            sec = float(t["seconds"].mean())
            rows.append({"kind": kind, "registration": name, "n_pairs": len(t), "epe_px": float(t["epe_px"].mean()),
                         "epe_ratio_to_identity": float(t["epe_px"].mean() / t["identity_epe_px"].mean()),
                         "ncc_gain": float(t["ncc_gain"].mean()), "pairs_ncc_improved": float((t["ncc_gain"] > 0).mean()),
                         "folding": float(t["folding"].mean()), "pairs_folded": float((t["folding"] > 0).mean()),
                         "seconds_per_pair": sec,
                         "seconds_over_network": float(sec / net) if net and np.isfinite(net) and net > 0 else np.nan})
    return pd.DataFrame(rows)


def summary_yardstick(summary: "pd.DataFrame", kind: str = "step") -> str | None:  # noqa: F821
    """:func:`yardstick` of a :func:`comparison_summary` on ``kind`` pairs (its identity row is the control);
    ``None`` without an identity row or when no reference beats it."""
    sub = summary[summary["kind"] == kind].set_index("registration")["epe_px"]
    if "identity" not in sub.index:
        return None
    return yardstick(sub.to_dict(), float(sub["identity"]))


def load_comparison(metrics_dir: str | Path) -> "pd.DataFrame | None":  # noqa: F821
    """Notebook 02's :func:`comparison_summary` from ``metrics_dir`` (``artifacts.files.REGISTRATION_COMPARISON``), or ``None``
    when that notebook has not written it (real data has no exact motion, hence no comparison)."""
    import pandas as pd

    path = Path(metrics_dir) / files.REGISTRATION_COMPARISON
    if not path.exists():
        return None
    table = pd.read_csv(path)
    need = {"kind", "registration", "epe_px"}
    if not need <= set(table.columns):
        raise ValueError(f"{path}: not a registration comparison (columns {sorted(table.columns)}, need {sorted(need)}); "
                         "rerun notebook 02")
    return table


def pair_seconds(registrations: Mapping[str, Callable], images: np.ndarray, n_pairs: Mapping[str, int] | int = 8
                 ) -> dict[str, float]:
    """Wall seconds per pair of each registration on the consecutive frame pairs of one ``(T, H, W)`` sequence
    (:func:`~echo_utils.registration.inference.seconds_per_pair`, the propagation path), measured one after the
    other in this call, each after one untimed warm-up pair.  ``n_pairs``: how many pairs each is timed on (one
    number, or ``{name: n}``; a per-pair optimiser needs fewer)."""
    from .inference import MemoizedRegistration, seconds_per_pair

    out = {}
    for name, reg in registrations.items():
        inner = reg.registration if isinstance(reg, MemoizedRegistration) else reg
        _warm_up(inner, images[1:2], images[0:1])
        n = n_pairs if isinstance(n_pairs, int) else int(n_pairs.get(name, 8))
        out[name] = seconds_per_pair(inner, images, n)
    return out


def five_way(registrations: Mapping[str, Callable], root: str | Path, sequences: Sequence, network: str = "dlir",
             kinds: Sequence[str] = PAIR_KINDS) -> tuple["pd.DataFrame", "pd.DataFrame"]:  # noqa: F821
    """Notebook 02's comparison of ``registrations`` (``{name: reg}``) on the phantom ``sequences``: every pair
    kind's :func:`registration_comparison` (one row per registration and pair) stacked, and its
    :func:`comparison_summary` against ``network`` (the same-run time ratio's denominator).
    Returns ``(per_pair, summary)``."""
    import pandas as pd

    per_pair = pd.concat([registration_comparison(registrations, phantom_pairs(root, sequences, kind))
                          for kind in kinds], ignore_index=True)
    return per_pair, comparison_summary(per_pair, network)
