"""Tune the references honestly: InstanceBSpline's per-pair optimiser, elastix's bending weight and TV-L1 optical
flow's data weight and smoothing, chosen on the demo cohort's TRAINING patients against the phantom's exact motion
(never the test patients).

    python benchmarks/bench_reference_tuning.py                 # demo profile, 30 step pairs
    python benchmarks/bench_reference_tuning.py --pairs 12 --out /tmp/probe.json   # a quick probe

For each candidate setting the end-point error (EPE, px, mean over the fixed frame's myocardium;
:mod:`echo_utils.registration.evidence`) against :func:`echo_utils.data.phantom.pair_displacement` is measured on the
same pairs: consecutive frames between ED and ES (``step``: what propagation registers; the choice is made on these)
and, optionally, ED/ES pairs (``ed_es``: the largest motion; for information).  The identity (no motion) is the
control every setting must beat.  InstanceBSpline keeps the network's bending weight (``registration.alpha``: the
same loss as the network, so it is a fair reference; the weight itself is chosen by
``bench_registration_alpha.py``) and only its optimiser is swept (``instance_lr``, ``instance_iterations``).  Each
reference's setting with the lowest step EPE is ``chosen``
(:func:`echo_utils.registration.evidence.choose_setting`, which also says whether it beats the identity); the demo
profile (``notebooks/params/demo.yaml``) holds those values.

Writes ``benchmarks/results/reference_tuning.json`` (seconds per pair measured in the same run, with the load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]

#: the candidate settings (a small grid per reference).  A 12-pair probe (reference_tuning_probe.json, before the
#: network's recipe landed) found elastix best at the largest weight it tried, 10, with the sector mask worse at every
#: weight, and optical flow best at attachment 5 without smoothing (sigma 1 worse at every attachment): hence grids
#: that bracket those optima.  InstanceBSpline: its optimiser only (the bending weight is the network's).
INSTANCE_GRID = {"instance_lr": [0.05, 0.1, 0.2], "instance_iterations": [100, 200]}
ELASTIX_GRID = {"bending_weight": [10.0, 30.0, 100.0, 300.0, 1000.0], "mask": ["none"]}
OPTICAL_FLOW_GRID = {"attachment": [2.0, 3.5, 5.0, 7.5, 10.0], "sigma": [0.0, 0.5]}


def _grid(grid: dict) -> list[dict]:
    keys = list(grid)
    out = [{}]
    for k in keys:
        out = [{**o, k: v} for o in out for v in grid[k]]
    return out


def _subset(pairs: dict, n: int | None, seed: int) -> dict:
    """``n`` pairs drawn without replacement (seeded), in their original order; all when ``n`` is None or larger."""
    total = len(pairs["info"])
    if n is None or n >= total:
        return pairs
    idx = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
    return {k: ([v[i] for i in idx] if k == "info" else v[idx]) for k, v in pairs.items()}


def _measure(name: str, reg, pairs: dict) -> dict:
    from echo_utils.registration.evidence import endpoint_error

    t0 = time.perf_counter()
    c0 = time.process_time()
    table = endpoint_error({name: reg}, pairs, batch_size=8)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(pairs["info"])
    return {"epe_px": float(table.epe_px.mean()), "epe_px_median": float(table.epe_px.median()),
            "pairs_better_than_identity": float((table.epe_px < table.true_px).mean()),
            "seconds_per_pair": wall / n, "cpu_seconds_per_pair": cpu / n, "n_pairs": n}


def _configured(rc, method: str, setting: dict):
    """The registration section with one candidate ``setting``: InstanceBSpline's keys are top-level
    (``instance_*``), the classical references' live in their own sub-section."""
    if method == "instance":
        return rc.model_copy(update=setting)
    return rc.model_copy(update={method: getattr(rc, method).model_copy(update=setting)})


def run(params: Path, work: Path, n_step: int, n_ed_es: int, seed: int, grids: dict) -> dict:
    from echo_utils.config import config_hash, load_config
    from echo_utils.registration import IdentityRegistration, elastix_available, registration_from_config
    from echo_utils.registration.evidence import choose_setting, phantom_pairs
    from echo_utils.rundir import open_run
    from echo_utils.study import Study
    import torch

    probe = load_config(params)
    key = config_hash(probe.data.model_dump(mode="json"))  # the cohort is all that matters here
    cfg, paths = open_run(params, {}, work / f"cohort-{key}", "cpu", create=True)
    study = Study.of(cfg, paths)
    split = study.cohort.split
    train = study.sequences("train")
    assert not {s.patient for s in train} & set(split["test"]), "a test patient among the tuning sequences"
    root = Path(study.cohort.root)
    sets = {"step": _subset(phantom_pairs(root, train, "step"), n_step, seed)}
    if n_ed_es:
        sets["ed_es"] = _subset(phantom_pairs(root, train, "ed_es"), n_ed_es, seed + 1)
    rc = cfg.registration

    def measure_all(name, reg):
        row = {k: _measure(name, reg, p) for k, p in sets.items()}
        print(f"{name:55s} " + "  ".join(f"{k} EPE {v['epe_px']:.3f} px ({v['seconds_per_pair'] * 1e3:.0f} ms/pair)"
                                         for k, v in row.items()), flush=True)
        return row

    out = {"profile": str(params.relative_to(ROOT)) if params.is_relative_to(ROOT) else str(params),
           "tuning_patients": sorted({s.patient for s in train}), "test_patients": sorted(split["test"]),
           "pairs": {k: len(v["info"]) for k, v in sets.items()}, "pair_seed": seed,
           "load_average_1min_start": os.getloadavg()[0],
           "identity": measure_all("identity", IdentityRegistration()),
           "instance_fixed": {"alpha": rc.alpha, "alpha_reference_size": rc.alpha_reference_size,
                              "sigma": rc.loss_sigma, "mask": rc.loss_mask, "grid_spacing": rc.grid_spacing},
           "grids": grids, "candidates": {m: [] for m in grids}, "chosen": {}}
    ident = out["identity"]["step"]["epe_px"]
    for method, grid in grids.items():
        if method == "elastix" and not elastix_available():
            out["elastix_missing"] = True
            print("elastix: not installed, left out", flush=True)
            continue
        for i, setting in enumerate(_grid(grid)):
            reg = registration_from_config(method, _configured(rc, method, setting))
            if i == 0:  # one untimed pair first: imports (ITK takes seconds) and first-call set-up are not timed
                reg(*(torch.from_numpy(sets["step"][k][:1])[:, None] for k in ("fixed", "moving")))
            out["candidates"][method].append({"settings": setting, **measure_all(repr(reg), reg)})
        out["chosen"][method] = choose_setting(out["candidates"][method], ident)
    out["load_average_1min_end"] = os.getloadavg()[0]
    out["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=ROOT / "notebooks" / "params" / "demo.yaml")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "echo-bench-reference")
    ap.add_argument("--pairs", type=int, default=30, help="consecutive-frame pairs from the training patients")
    ap.add_argument("--ed-es-pairs", type=int, default=0, help="ED/ES pairs from the training patients (0: none)")
    ap.add_argument("--only", nargs="*", default=None, help="references to sweep (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="which pairs are drawn")
    ap.add_argument("--out", type=Path, default=RESULTS / "reference_tuning.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    grids = {"instance": INSTANCE_GRID, "optical_flow": OPTICAL_FLOW_GRID, "elastix": ELASTIX_GRID}
    grids = {k: v for k, v in grids.items() if args.only is None or k in args.only}
    out = run(args.params, args.work, args.pairs, args.ed_es_pairs, args.seed, grids)
    out["torch_threads"] = torch.get_num_threads()
    out["wall_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for method, c in out["chosen"].items():
        print(f"chosen {method}: {c['settings']} step EPE {c['step_epe_px']:.3f} px vs identity "
              f"{c['identity_step_epe_px']:.3f} px ({'beats' if c['beats_identity'] else 'does NOT beat'} it)")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
